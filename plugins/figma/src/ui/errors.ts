/** Error wording: the sentence for the user comes from the protocol's generated table, by code. */

import { ERROR_CODES } from "../shared/protocol.gen";

/** The user's sentence for a protocol error code; a code this version does not know says so. */
export function errorText(code: string): string {
  const entry = (ERROR_CODES as Record<string, { userText: string } | undefined>)[code];
  return entry?.userText ?? `The daemon reported an error this plugin does not know (${code}).`;
}

/** What the sidebar's error box shows: the code, the user's sentence, the daemon's detail and the field. */
export interface ShownError {
  code: string;
  text: string;
  detail: string;
  field: string | null;
}

export function describeError(error: { code: string; message: string; field?: string | null }): ShownError {
  const text = errorText(error.code);
  return { code: error.code, text, detail: error.message === text ? "" : error.message, field: error.field ?? null };
}
