/** The plugin's manifest.json; build.mjs writes it. The daemon's port comes from the generated constants. */

import { DEFAULT_PORT } from "./shared/protocol.gen";

const origins = [`http://localhost:${DEFAULT_PORT}`, `ws://localhost:${DEFAULT_PORT}`];

export const manifest = {
  name: "underpaint",
  id: "underpaint-local-daemon",
  api: "1.0.0",
  editorType: ["figma"],
  main: "code.js",
  ui: "ui.html",
  documentAccess: "dynamic-page",
  networkAccess: {
    allowedDomains: origins,
    devAllowedDomains: origins,
    reasoning:
      "underpaint sends the selected image and mask to the underpaint daemon that the user runs on their own " +
      `machine (localhost:${DEFAULT_PORT}) and receives the generated images back; nothing leaves the computer.`,
  },
};
