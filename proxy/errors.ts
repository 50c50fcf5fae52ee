// The proxy's error catalogue: errors with a stable code, for what the operator or client caused.

/** Bad flags, config file or kubeconfig: the CLI prints the message on one line and exits 1. */
export class ConfigError extends Error {
  readonly code = 'KCP_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
