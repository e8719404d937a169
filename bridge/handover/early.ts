/**
 * The first module the bus's entry loads, before any other of ours: what a
 * re-executed bus must do as soon as it runs JavaScript at all.
 *
 * SIGUSR2 ends the process by its default action until a handler is there,
 * and Node.js resets every signal's mask and disposition when it starts, so
 * nothing the old image does before execve can keep one from killing the
 * new image (docs/handover.md, "Failure handling"). The handler goes in
 * here, not after the rest of the control plane has loaded, so that the
 * window is only Node.js's own start; a signal caught before the bus serves
 * is kept for when it can act.
 */
let pending = false;
const onEarlyUpgrade = (): void => {
  pending = true;
};
process.on('SIGUSR2', onEarlyUpgrade);

/** Milliseconds since the epoch, with fractions, comparable across execve (the clock behind Date). */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** When Node.js started this process, and when it reached the bus's code. */
export const processStartedAt = performance.timeOrigin;
export const enteredAt = wallClockMs();

/** Hands SIGUSR2 over to the serving bus's handler; true if one came meanwhile. */
export function takeEarlyUpgrade(): boolean {
  process.off('SIGUSR2', onEarlyUpgrade);
  const was = pending;
  pending = false;
  return was;
}
