/**
 * Waits until `check` holds (polling), for at most `timeoutMs`: for effects that land after the response (a usage
 * row, a health check, a metric), without betting on how long they take on a busy machine.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, what = "the condition" } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
