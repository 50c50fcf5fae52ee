// The watch clients' process (watch-clients.ts), as the benchmark drives it.
import { IpcChild } from './ipc-child.js';
import type { ClientsRequest } from './watch-clients.js';

export class ClientsProcess extends IpcChild<ClientsRequest> {
  constructor() {
    super(new URL('./watch-clients.js', import.meta.url), 'watch clients', "the watch clients' process");
  }
}
