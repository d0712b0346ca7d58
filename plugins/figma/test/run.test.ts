/** A job's client-side life (JobRun) against a scripted client: states, and cancel at every point. */

import { describe, expect, it } from "vitest";
import type { Accepted, JobSpec, Planned } from "../src/shared/protocol.gen";
import { JobRun, type RunClient, type RunState, type Upload } from "../src/ui/run";

const job: JobSpec = { mode: "inpaint", canvas: { width: 8, height: 8 } };
const planned: Planned = {
  type: "planned",
  request_id: "r1",
  upload: { x: 0, y: 0, width: 8, height: 8 },
  work: { x: 0, y: 0, width: 8, height: 8 },
  canvas: { x: 0, y: 0, width: 8, height: 8 },
  model_width: 8,
  model_height: 8,
};
const accepted: Accepted = { type: "accepted", request_id: "r2", job_id: "j1", seed: 7 };
const noUpload: Upload = { region: null, image: null, mask: null };

/** A client whose replies the test releases one at a time; records what was sent. */
function scripted() {
  const sent: string[] = [];
  let releasePlan!: () => void;
  let releaseSubmit!: () => void;
  const client: RunClient = {
    plan: () => new Promise((ok) => (releasePlan = () => ok(planned))),
    submit: () => {
      sent.push("submit");
      return new Promise((ok) => (releaseSubmit = () => ok(accepted)));
    },
    cancel: (jobId) => void sent.push(`cancel ${jobId}`),
  };
  return { client, sent, plan: () => releasePlan(), submit: () => releaseSubmit() };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("JobRun", () => {
  it("goes planning -> uploading -> submitted -> queued -> running -> finished", async () => {
    const s = scripted();
    const seen: RunState[] = [];
    const run = new JobRun(s.client, (r) => {
      if (seen.at(-1) !== r.state) seen.push(r.state);
    });
    const started = run.start(job, async () => noUpload);
    s.plan();
    await tick();
    s.submit();
    expect(await started).toEqual(accepted);
    run.receive({ type: "started", job_id: "j1" });
    run.receive({ type: "finished", job_id: "j1", results: 1 });
    expect(seen).toEqual(["planning", "uploading", "submitted", "queued", "running", "finished"]);
    expect(run.placesResults).toBe(true);
    // an ended run ignores late events
    expect(run.receive({ type: "cancelled", job_id: "j1" })).toBe("finished");
  });

  it("cancel while planning ends cancelled at once and never submits", async () => {
    const s = scripted();
    const run = new JobRun(s.client, () => {});
    const started = run.start(job, async () => noUpload);
    run.cancel();
    expect(run.state).toBe("cancelled");
    s.plan();
    expect(await started).toBeNull();
    expect(s.sent).toEqual([]);
  });

  it("cancel after submit, before accepted: sends cancel once the job id is known, places nothing", async () => {
    const s = scripted();
    const run = new JobRun(s.client, () => {});
    const started = run.start(job, async () => noUpload);
    s.plan();
    await tick();
    expect(run.state).toBe("submitted");
    run.cancel();
    expect(s.sent).toEqual(["submit"]);
    s.submit();
    await started;
    expect(s.sent).toEqual(["submit", "cancel j1"]);
    expect(run.placesResults).toBe(false);
    // the daemon finished first (the cancel came too late): still cancelled for the user
    run.receive({ type: "error", code: "not_cancellable", message: "", job_id: "j1" });
    expect(run.receive({ type: "finished", job_id: "j1", results: 1 })).toBe("cancelled");
  });

  it("cancel after accepted sends cancel now and ends with the daemon's answer", async () => {
    const s = scripted();
    const run = new JobRun(s.client, () => {});
    const started = run.start(job, async () => noUpload);
    s.plan();
    await tick();
    s.submit();
    await started;
    run.cancel();
    run.cancel();
    expect(s.sent).toEqual(["submit", "cancel j1"]);
    expect(run.placesResults).toBe(true);
    expect(run.receive({ type: "cancelled", job_id: "j1" })).toBe("cancelled");
  });
});
