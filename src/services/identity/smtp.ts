// A small SMTP client (RFC 5321) for the validation emails this server sends itself: one message
// per connection, EHLO (HELO for servers that know no EHLO), STARTTLS when configured, AUTH PLAIN
// when a user is given, then MAIL, RCPT, DATA. Only text/plain messages, dot-stuffed.
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface SmtpConfig {
  readonly smtp_host: string;
  readonly smtp_port: number;
  /** "none": plain text; "starttls": upgrade after EHLO (refused if the server cannot); "implicit": TLS from the start (port 465). */
  readonly smtp_tls: "none" | "starttls" | "implicit";
  readonly smtp_user?: string;
  readonly smtp_pass?: string;
  readonly verify_tls: boolean;
}

export interface MailMessage {
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** Sends one email; rejects with an Error naming the SMTP step that failed. */
export type Mailer = (message: MailMessage) => Promise<void>;

const TIMEOUT_MS = 15_000;

/** The address inside "Name <addr>" or a bare address. */
const bareAddress = (s: string) => /<([^>]*)>/.exec(s)?.[1] ?? s.trim();

/** RFC 2047 encoded-word for a header with non-ASCII text. */
const headerText = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s : `=?UTF-8?B?${Buffer.from(s, "utf8").toString("base64")}?=`);

/** The whole message: headers, then the body base64-encoded (no line of it can be a lone "."). */
export function formatMessage(message: MailMessage, date: Date, messageId: string): string {
  const body = Buffer.from(message.text, "utf8").toString("base64").replace(/.{1,76}/g, "$&\r\n");
  return [
    `From: ${message.from}`,
    `To: ${message.to}`,
    `Subject: ${headerText(message.subject)}`,
    `Date: ${date.toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: <${messageId}>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=UTF-8",
    "Content-Transfer-Encoding: base64",
    "",
    body,
  ].join("\r\n");
}

/** Reads SMTP replies (possibly multi-line, "250-...") from a socket. */
class ReplyReader {
  private buffer = "";
  private waiting: ((reply: { code: number; text: string }) => void) | undefined;
  private failed: ((error: Error) => void) | undefined;
  private error: Error | undefined;

  constructor(socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  attach(socket: Socket | TLSSocket): void {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      this.pump();
    });
    socket.on("error", (e) => this.fail(e));
    socket.on("close", () => this.fail(new Error("the SMTP server closed the connection")));
  }

  private fail(error: Error): void {
    this.error ??= error;
    this.failed?.(error);
    this.waiting = this.failed = undefined;
  }

  private pump(): void {
    if (!this.waiting) return;
    const lines = this.buffer.split("\r\n");
    for (let i = 0; i < lines.length - 1; i++) {
      const line = lines[i]!;
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const text = lines.slice(0, i + 1).map((l) => l.slice(4)).join("\n");
        this.buffer = lines.slice(i + 1).join("\r\n");
        const resolve = this.waiting;
        this.waiting = this.failed = undefined;
        resolve({ code: Number(line.slice(0, 3)), text });
        return;
      }
    }
  }

  next(): Promise<{ code: number; text: string }> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
      this.pump();
    });
  }
}

export function smtpMailer(config: SmtpConfig, hostname = "localhost"): Mailer {
  return async (message) => {
    const tlsOptions = { host: config.smtp_host, port: config.smtp_port, servername: config.smtp_host, rejectUnauthorized: config.verify_tls };
    let socket: Socket | TLSSocket = config.smtp_tls === "implicit" ? tlsConnect(tlsOptions) : netConnect({ host: config.smtp_host, port: config.smtp_port });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error("the SMTP server did not answer in time")));
    let reader = new ReplyReader(socket);
    const expect = async (step: string, ok: (code: number) => boolean) => {
      const reply = await reader.next();
      if (!ok(reply.code)) throw new Error(`SMTP ${step}: ${reply.code} ${reply.text}`);
      return reply;
    };
    const command = async (line: string, step: string, ok: (code: number) => boolean) => {
      socket.write(`${line}\r\n`);
      return expect(step, ok);
    };
    const is2xx = (c: number) => c >= 200 && c < 300;
    try {
      await expect("greeting", (c) => c === 220);
      const hello = async () => {
        socket.write(`EHLO ${hostname}\r\n`);
        const reply = await reader.next();
        if (is2xx(reply.code)) return reply.text;
        await command(`HELO ${hostname}`, "HELO", is2xx);
        return "";
      };
      let extensions = await hello();
      if (config.smtp_tls === "starttls") {
        if (!/^STARTTLS\b/im.test(extensions)) throw new Error("SMTP: the server does not offer STARTTLS");
        await command("STARTTLS", "STARTTLS", (c) => c === 220);
        socket.removeAllListeners("data");
        socket.removeAllListeners("close");
        socket = tlsConnect({ ...tlsOptions, socket: socket as Socket });
        reader = new ReplyReader(socket);
        extensions = await hello();
      }
      if (config.smtp_user !== undefined) {
        const credentials = Buffer.from(`\0${config.smtp_user}\0${config.smtp_pass ?? ""}`, "utf8").toString("base64");
        await command(`AUTH PLAIN ${credentials}`, "AUTH", (c) => c === 235);
      }
      await command(`MAIL FROM:<${bareAddress(message.from)}>`, "MAIL FROM", is2xx);
      await command(`RCPT TO:<${bareAddress(message.to)}>`, "RCPT TO", is2xx);
      await command("DATA", "DATA", (c) => c === 354);
      const id = `${crypto.randomUUID()}@${hostname}`;
      await command(`${formatMessage(message, new Date(), id)}\r\n.`, "message", is2xx);
      socket.write("QUIT\r\n");
    } finally {
      socket.end();
    }
  };
}
