// A fake SMTP server on 127.0.0.1 for tests of the emails Portier sends: it speaks just enough
// SMTP (EHLO or, with `heloOnly`, HELO only, as sytest's; MAIL, RCPT, DATA, QUIT) and keeps each
// message with its text/plain body decoded.
import type { Socket } from "bun";

export interface ReceivedMail {
  from: string;
  to: string;
  data: string;
  /** The message body, base64 decoded when so encoded. */
  text: string;
}

export class FakeSmtpServer {
  readonly mails: ReceivedMail[] = [];
  /** The AUTH commands received, as sent. */
  readonly authLines: string[] = [];
  private readonly waiters: ((mail: ReceivedMail) => void)[] = [];
  readonly server;

  constructor(options: { heloOnly?: boolean } = {}) {
    type State = { buffer: string; from?: string; to?: string; inData: boolean };
    this.server = Bun.listen<State>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          socket.data = { buffer: "", inData: false };
          socket.write("220 fake smtp\r\n");
        },
        data: (socket: Socket<State>, chunk) => {
          const state = socket.data;
          state.buffer += Buffer.from(chunk).toString("utf8");
          for (;;) {
            if (state.inData) {
              const end = state.buffer.indexOf("\r\n.\r\n");
              if (end < 0) return;
              const data = state.buffer.slice(0, end);
              state.buffer = state.buffer.slice(end + 5);
              state.inData = false;
              this.received({ from: state.from!, to: state.to!, data, text: decodeBody(data) });
              state.from = state.to = undefined;
              socket.write("250 ok\r\n");
              continue;
            }
            const eol = state.buffer.indexOf("\r\n");
            if (eol < 0) return;
            const line = state.buffer.slice(0, eol);
            state.buffer = state.buffer.slice(eol + 2);
            const verb = line.split(" ")[0]!.toUpperCase();
            if (verb === "EHLO") socket.write(options.heloOnly ? "500 unrecognized\r\n" : "250-fake\r\n250 8BITMIME\r\n");
            else if (verb === "HELO") socket.write("250 hi\r\n");
            else if (verb === "AUTH") {
              this.authLines.push(line);
              socket.write("235 ok\r\n");
            }
            else if (verb === "MAIL") {
              state.from = line.replace(/^MAIL FROM:\s*/i, "");
              socket.write("250 ok\r\n");
            } else if (verb === "RCPT") {
              state.to = line.replace(/^RCPT TO:\s*/i, "");
              socket.write("250 ok\r\n");
            } else if (verb === "DATA") {
              state.inData = true;
              socket.write("354 go\r\n");
            } else if (verb === "QUIT") {
              socket.write("221 bye\r\n");
              socket.end();
              return;
            } else socket.write("500 unrecognized\r\n");
          }
        },
      },
    });
  }

  get port(): number {
    return this.server.port;
  }

  /** The next mail (or one already received and not yet taken). */
  nextMail(timeoutMs = 5000): Promise<ReceivedMail> {
    const ready = this.pending.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no mail arrived")), timeoutMs);
      this.waiters.push((mail) => {
        clearTimeout(timer);
        resolve(mail);
      });
    });
  }

  private readonly pending: ReceivedMail[] = [];

  private received(mail: ReceivedMail): void {
    this.mails.push(mail);
    const waiter = this.waiters.shift();
    if (waiter) waiter(mail);
    else this.pending.push(mail);
  }

  stop(): void {
    this.server.stop(true);
  }
}

function decodeBody(data: string): string {
  const split = data.indexOf("\r\n\r\n");
  const headers = data.slice(0, split);
  const body = data.slice(split + 4);
  return /content-transfer-encoding:\s*base64/i.test(headers) ? Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8") : body;
}
