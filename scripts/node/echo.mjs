// The Node baseline of scripts/bench.py (--baseline node): ws + msgpackr answering sys.echo as the gate does.
// Each binary frame is a msgpack request {id, fn, args}; the reply is {id, ok: true, data: args}, one binary
// frame, so the load generator checks it exactly as it checks the gate's. Listens on 127.0.0.1, a free port
// (printed as "node ws=PORT"); the backlog is Node's default (511). Ends on SIGINT/SIGTERM.
import { WebSocketServer } from "ws";
import { Packr, Unpackr } from "msgpackr";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 1 << 20 });

server.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary) {
      ws.close(1003, "binary frames only");
      return;
    }
    const request = unpackr.unpack(data);
    ws.send(packr.pack({ id: request.id, ok: true, data: request.args }));
  });
});
server.on("listening", () => {
  process.stderr.write(`node ws=${server.address().port}\n`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
