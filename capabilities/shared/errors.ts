/** Error helpers shared by every part of the watcher. */

/** A readable message of any thrown value (RegistryError, KubeApiError, Error…). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
