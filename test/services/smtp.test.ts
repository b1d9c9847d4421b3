// The SMTP client: EHLO, AUTH PLAIN with the configured user, the envelope from the bare
// addresses, a base64 body that survives lines starting with "."; a refused step names itself.
import { afterAll, expect, test } from "bun:test";
import { formatMessage, smtpMailer } from "../../src/services/identity/smtp";
import { FakeSmtpServer } from "../helpers/fake-smtp";

const smtp = new FakeSmtpServer();
afterAll(() => smtp.stop());

test("a message goes through with AUTH PLAIN", async () => {
  const send = smtpMailer({ smtp_host: "127.0.0.1", smtp_port: smtp.port, smtp_tls: "none", smtp_user: "u", smtp_pass: "p", verify_tls: true }, "hs.example");
  await send({ from: "Portier <noreply@hs.example>", to: "someone@example.com", subject: "Grüße", text: "line one\r\n.\r\nhttp://link.example/x\r\n" });
  const mail = await smtp.nextMail();
  expect(smtp.authLines).toEqual([`AUTH PLAIN ${Buffer.from("\0u\0p").toString("base64")}`]);
  expect(mail.from).toBe("<noreply@hs.example>");
  expect(mail.to).toBe("<someone@example.com>");
  expect(mail.text).toBe("line one\r\n.\r\nhttp://link.example/x\r\n");
  expect(mail.data).toContain("Subject: =?UTF-8?B?");
});

test("STARTTLS that the server does not offer is refused before anything is sent", async () => {
  const before = smtp.mails.length;
  const send = smtpMailer({ smtp_host: "127.0.0.1", smtp_port: smtp.port, smtp_tls: "starttls", verify_tls: true });
  await expect(send({ from: "a@b", to: "c@d", subject: "s", text: "t" })).rejects.toThrow(/STARTTLS/);
  expect(smtp.mails.length).toBe(before);
});

test("the message format: headers, then the base64 body in short lines", () => {
  const text = formatMessage({ from: "a@b", to: "c@d", subject: "Hi", text: "x".repeat(100) }, new Date(0), "id@b");
  const [headers, body] = text.split("\r\n\r\n");
  expect(headers).toContain("Content-Transfer-Encoding: base64");
  expect(headers).toContain("Message-ID: <id@b>");
  expect(body!.split("\r\n").every((l) => l.length <= 76)).toBe(true);
});
