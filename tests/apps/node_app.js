// An HTTP server on the socket secretrun hands over as fd 3 (LISTEN_FDS),
// answering with its SECRET; a graceful stop on SIGTERM.
const http = require("http");

if (process.env.LISTEN_FDS !== "1" || process.env.LISTEN_PID !== String(process.pid)) {
  console.error(`no socket handed over (LISTEN_FDS=${process.env.LISTEN_FDS} LISTEN_PID=${process.env.LISTEN_PID} pid=${process.pid})`);
  process.exit(2);
}
const secret = process.env.SECRET || "";
const server = http.createServer((req, res) => {
  res.setHeader("Connection", "close");
  res.end(secret);
});
server.listen({ fd: 3 });
process.on("SIGTERM", () => server.close(() => process.exit(0)));
