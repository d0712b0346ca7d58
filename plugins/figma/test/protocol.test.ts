/** The generated protocol module is current: it was generated from the committed protocol/schema.json. */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as generated from "../src/shared/protocol.gen";

const schemaPath = resolve(dirname(fileURLToPath(import.meta.url)), "../../../protocol/schema.json");
const schemaText = readFileSync(schemaPath, "utf8");
const schema = JSON.parse(schemaText);

describe("protocol.gen.ts", () => {
  it("was generated from the committed schema.json", () => {
    const digest = createHash("sha256").update(schemaText, "utf8").digest("hex");
    expect(
      generated.SCHEMA_SHA256,
      "protocol/schema.json changed: run `python -m underpaint_protocol.typescript > plugins/figma/src/shared/protocol.gen.ts`",
    ).toBe(digest);
  });

  it("carries the schema's constants, message types and error codes", () => {
    const facts = schema["x-underpaint"];
    expect(generated.DEFAULT_PORT).toBe(facts.default_port);
    expect(generated.DEFAULT_URL).toBe(facts.default_url);
    expect([...generated.RECONNECT_DELAYS]).toEqual(facts.reconnect_delays);
    expect([...generated.TERMINAL_STATES]).toEqual(facts.terminal_states);
    expect(generated.RAW_FORMATS).toEqual(facts.raw_formats);
    expect(Object.keys(generated.ERROR_CODES)).toEqual(Object.keys(facts.error_codes));
    for (const [code, entry] of Object.entries(facts.error_codes as Record<string, { user_text: string }>)) {
      expect(generated.ERROR_CODES[code as generated.ErrorCode].userText).toBe(entry.user_text);
    }
    expect([...generated.SERVER_MESSAGE_TYPES].sort()).toEqual(Object.keys(schema.$defs.ServerMessage.discriminator.mapping).sort());
    expect([...generated.CLIENT_MESSAGE_TYPES].sort()).toEqual(Object.keys(schema.$defs.ClientMessage.discriminator.mapping).sort());
  });
});
