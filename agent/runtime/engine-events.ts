/**
 * The engine's event stream (GET /events), read: one JSON object per line, in the engine's order.
 * Docker writes each event as a JSON document followed by a newline; a chunk of the HTTP answer
 * may end in the middle of one, so the reader keeps the tail until the next chunk.
 */

/** One engine event, e.g. a container's `die` with its exit code in `attributes.exitCode`. For a
 *  container, `attributes` holds its labels as well (and `name`, `image`). */
export interface EngineEvent {
  /** "container", "network", "image", … */
  type: string;
  /** "create", "start", "die", "oom", "destroy", … */
  action: string;
  /** The id of the object the event is about (the container id for container events). */
  id: string;
  attributes: Record<string, string>;
}

export interface EventHandlers {
  onEvent(event: EngineEvent): void;
  /** Called once when the stream ends or breaks; `err` says why when it broke. */
  onEnd(err?: Error): void;
}

export interface EventSubscription {
  /** Ends the subscription; `onEnd` is not called for it. */
  close(): void;
}

/** Splits a byte stream into lines and hands each parsed JSON line to `onValue`; an unreadable
 *  line goes to `onBad` and does not stop the stream. */
export class JsonLines {
  private tail = '';

  constructor(
    private readonly onValue: (value: unknown) => void,
    private readonly onBad: (line: string) => void,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.tail + chunk.toString();
    const lines = text.split('\n');
    this.tail = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        this.onBad(line);
        continue;
      }
      this.onValue(value);
    }
  }
}

/** Docker's event JSON (API 1.41: Type, Action, Actor.ID, Actor.Attributes) as an EngineEvent;
 *  undefined for anything without a type, an action and an id. The engine's timestamps are left
 *  out on purpose: they are another clock than the agent's, and nothing may be ordered by them. */
export function engineEvent(value: unknown): EngineEvent | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as { Type?: unknown; Action?: unknown; Actor?: { ID?: unknown; Attributes?: unknown } };
  const id = v.Actor?.ID;
  if (typeof v.Type !== 'string' || typeof v.Action !== 'string' || typeof id !== 'string' || id === '') return undefined;
  const attributes: Record<string, string> = {};
  const raw = v.Actor?.Attributes;
  if (raw !== null && typeof raw === 'object') {
    for (const [k, x] of Object.entries(raw as Record<string, unknown>)) if (typeof x === 'string') attributes[k] = x;
  }
  return { type: v.Type, action: v.Action, id, attributes };
}
