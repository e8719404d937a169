/**
 * Where the pause of an in-place upgrade goes (docs/handover.md, "The
 * pause"): the old image passes its figures across execve in the
 * environment, the new image adds its own and logs the lot at debug level.
 */
import { log } from '../log';
import { enteredAt, processStartedAt, wallClockMs } from './early';

const TIMES_ENV = 'KDBUS_BRIDGE_HANDOVER_TIMES';

/** The old image's side, up to execve. */
export interface OldSideTimes {
  checkMs: number;
  freezeMs: number;
  stateMs: number;
  stateBytes: number;
  frozenAt: number;
  execAt: number;
}

export function oldSideEnv(t: OldSideTimes): Record<string, string> {
  return { [TIMES_ENV]: JSON.stringify(t) };
}

/** The new image's side: call mark() after each step, done() once the bus serves. */
export class ResumeTimeline {
  private readonly old: OldSideTimes | undefined;
  private readonly steps: [string, number][] = [];
  private last: number;
  /** Between processes: when the successor asked for the bus (the old one freezes right after). */
  private askedAt: number | undefined;
  private oldFroze = false;

  /**
   * A successor's (--take-over): it starts when the successor connects, as
   * its own start and the configuration are done before and are no pause.
   */
  static takeOver(): ResumeTimeline {
    const t = new ResumeTimeline(wallClockMs(), false);
    t.steps.length = 0;
    t.askedAt = t.last;
    return t;
  }

  constructor(mainAt: number, inPlace = true) {
    const raw = inPlace ? process.env[TIMES_ENV] : undefined;
    if (inPlace) delete process.env[TIMES_ENV];
    let old: OldSideTimes | undefined;
    try {
      old = raw !== undefined ? (JSON.parse(raw) as OldSideTimes) : undefined;
    } catch {
      old = undefined;
    }
    this.old = old;
    if (old !== undefined) this.steps.push(['execve to Node.js start', processStartedAt - old.execAt]);
    this.steps.push(['Node.js start to bus code', enteredAt - processStartedAt], ['module loading', mainAt - enteredAt]);
    this.last = mainAt;
  }

  /** A successor's: the old bus says when it froze; its freeze and the transfer become steps of their own. */
  received(frozen: { atMs: number; freezeMs: number } | undefined): void {
    if (this.askedAt === undefined || frozen === undefined) return this.mark('state received and decoded');
    const t = wallClockMs();
    this.steps.push(
      ['until the old bus froze (the bus still serves)', frozen.atMs - this.askedAt],
      ['freeze', frozen.freezeMs],
      ['state encoded, sent, received and decoded', t - frozen.atMs - frozen.freezeMs],
    );
    this.askedAt = frozen.atMs;
    this.oldFroze = true;
    this.last = t;
  }

  mark(step: string): void {
    const t = wallClockMs();
    this.steps.push([step, t - this.last]);
    this.last = t;
  }

  done(): void {
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    const parts: string[] = [];
    if (this.old !== undefined) {
      const o = this.old;
      parts.push(`pre-check ${ms(o.checkMs)} (serving)`, `freeze ${ms(o.freezeMs)}`, `state written ${ms(o.stateMs)} (${o.stateBytes} bytes)`);
    }
    for (const [step, t] of this.steps) parts.push(`${step} ${ms(t)}`);
    if (this.old !== undefined) parts.push(`pause (frozen to serving) ${ms(this.last - this.old.frozenAt)}`);
    if (this.askedAt !== undefined) parts.push(`pause (${this.oldFroze ? 'frozen' : 'asked for the bus'} to serving) ${ms(this.last - this.askedAt)}`);
    log.debug(`handover timing: ${parts.join(', ')}`);
  }
}
