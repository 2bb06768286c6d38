// The `@octokit/webhooks` row of `cargo xtask bench`: the same work as booty's edge without a store, on
// Node. It verifies `X-Hub-Signature-256` and parses the payload with `Webhooks#verifyAndReceive`, lets
// the `issues.labeled` handler decide whether the label is the trigger, and answers `202 accepted` for a
// trigger, `200 ignored` for anything else, `400` when verification fails. Nothing is stored.
//
// node server.mjs SECRET LABEL   prints `listening 127.0.0.1:PORT`, exits 0 on SIGTERM.
import http from "node:http";
import { Webhooks } from "@octokit/webhooks";

const [secret, label] = process.argv.slice(2);
if (!secret || !label) {
  console.error("usage: node server.mjs SECRET LABEL");
  process.exit(2);
}
const webhooks = new Webhooks({ secret });
// The deliveries whose handler saw the trigger label, by delivery id, until their answer is written.
const triggers = new Set();
webhooks.on("issues.labeled", ({ id, payload }) => {
  if (payload.label?.name === label) {
    triggers.add(id);
  }
});

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    const id = req.headers["x-github-delivery"];
    try {
      await webhooks.verifyAndReceive({
        id,
        name: req.headers["x-github-event"],
        payload: Buffer.concat(chunks).toString("utf8"),
        signature: req.headers["x-hub-signature-256"],
      });
    } catch (error) {
      triggers.delete(id);
      reply(res, 400, { error: String(error.message ?? error) });
      return;
    }
    if (triggers.delete(id)) {
      reply(res, 202, { status: "accepted", job_id: id });
    } else {
      reply(res, 200, { status: "ignored" });
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening ${address}:${port}`);
});

process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
