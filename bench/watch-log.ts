// The watch benchmark's progress lines, on stderr (stdout carries the Markdown summary).
export const log = (msg: string) => process.stderr.write(`[bench:watch ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
