// An HTTP server answering with its SECRET: on the socket secretrun hands
// over as fd 3 (LISTEN_FDS, LISTEN_PID), or else on $PORT, bound by itself
// (the baseline in bench/listen.py). A graceful stop on SIGTERM.
const http = require("http");

const secret = process.env.SECRET || "";
const server = http.createServer((req, res) => {
  res.setHeader("Connection", "close");
  res.end(secret);
});
if (process.env.LISTEN_FDS) {
  if (process.env.LISTEN_FDS !== "1" || process.env.LISTEN_PID !== String(process.pid)) {
    console.error(`LISTEN_FDS=${process.env.LISTEN_FDS} LISTEN_PID=${process.env.LISTEN_PID}: not for pid ${process.pid}`);
    process.exit(2);
  }
  server.listen({ fd: 3 });
} else {
  server.listen(Number(process.env.PORT), "127.0.0.1");
}
process.on("SIGTERM", () => server.close(() => process.exit(0)));
