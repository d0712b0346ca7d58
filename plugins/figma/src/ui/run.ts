/**
 * One job's client-side life, the TypeScript mirror of the Python controller's rules: plan, cut the
 * planned region, submit, then follow the daemon's events to an end. Cancel works at any point: before
 * `accepted` it is remembered, sent as soon as the job id is known, and the job ends `cancelled` with
 * nothing placed, whatever the daemon managed to finish meanwhile.
 */

import type { Accepted, JobSpec, JobState, Planned, Rect, ServerMessage } from "../shared/protocol.gen";
import type { Guides, ImageData } from "./session";

/** Client-side states before the daemon knows the job, then the daemon's own job states. */
export type RunState = "planning" | "uploading" | "submitted" | JobState;

export const isEnded = (state: RunState): boolean => state === "finished" || state === "failed" || state === "cancelled";

/** What the run needs from the client (the real one, or a fake in unit tests). */
export interface RunClient {
  plan(job: JobSpec): Promise<Planned>;
  submit(job: JobSpec, region?: Rect | null, image?: ImageData | null, mask?: ImageData | null, guides?: Guides): Promise<Accepted>;
  cancel(jobId: string): void;
}

export interface Upload {
  region: Rect | null;
  image: ImageData | null;
  mask: ImageData | null;
  /** Control layers over `planned.control` and whole references, when the job has them. */
  guides?: Guides;
}

export class JobRun {
  state: RunState = "planning";
  jobId: string | null = null;
  accepted: Accepted | null = null;
  /** The user pressed Cancel; before `accepted` this also means: place nothing. */
  cancelRequested = false;
  private cancelledBeforeAccept = false;
  private cancelSent = false;

  constructor(
    private readonly client: RunClient,
    private readonly onState: (run: JobRun) => void,
  ) {}

  /** Plan, upload, submit. Resolves to the accepted job, or null when cancelled before the daemon had it. */
  async start(job: JobSpec, upload: (planned: Planned) => Promise<Upload>): Promise<Accepted | null> {
    this.set("planning");
    const planned = await this.client.plan(job);
    if (this.cancelRequested) return this.endCancelled();
    this.set("uploading");
    const { region, image, mask, guides } = await upload(planned);
    if (this.cancelRequested) return this.endCancelled();
    this.set("submitted");
    const accepted = await this.client.submit(job, region, image, mask, guides);
    this.accepted = accepted;
    this.jobId = accepted.job_id;
    if (this.cancelRequested) this.sendCancel();
    else if (this.state === "submitted") this.set("queued");
    return accepted;
  }

  /** Cancel now if the daemon knows the job, else as soon as it does. */
  cancel(): void {
    if (isEnded(this.state) || this.cancelRequested) return;
    this.cancelRequested = true;
    if (this.jobId === null) {
      this.cancelledBeforeAccept = true;
      // Nothing is at the daemon yet (or the submit is in flight): the user sees the cancel at once.
      if (this.state !== "submitted") this.endCancelled();
      else this.onState(this);
      return;
    }
    this.sendCancel();
  }

  /** Whether results of this run go onto the canvas. */
  get placesResults(): boolean {
    return !this.cancelledBeforeAccept;
  }

  /** Follow the daemon's events for this job; returns the state after it. */
  receive(message: ServerMessage): RunState {
    if (isEnded(this.state)) return this.state;
    switch (message.type) {
      case "queued":
        this.set("queued");
        break;
      case "started":
      case "progress":
      case "result":
        this.set("running");
        break;
      case "finished":
        // Cancelled before accept, and the daemon finished first: the user asked for nothing.
        this.set(this.cancelledBeforeAccept ? "cancelled" : "finished");
        break;
      case "failed":
      case "cancelled":
        this.set(message.type);
        break;
      case "error":
        // A cancel that came too late (`not_cancellable`) is not the user's problem: the outcome follows.
        break;
    }
    return this.state;
  }

  private sendCancel(): void {
    if (this.cancelSent || this.jobId === null) return;
    this.cancelSent = true;
    this.client.cancel(this.jobId);
    this.onState(this);
  }

  private endCancelled(): null {
    this.set("cancelled");
    return null;
  }

  private set(state: RunState): void {
    if (this.state === state && state !== "planning") return;
    this.state = state;
    this.onState(this);
  }
}
