"""A real SMTP server (aiosmtpd) that stores every message in a maildir, with X-RcptTo recording
the envelope recipients, and answers some recipients as a troubled relay would:
  fail550...@  -> 550 for good;   defer451...@ -> 451 twice, then accepted;
  drop-after-data...@ -> keeps the message, then drops the connection without a reply
  (the ambiguous case: the relay has it, the client cannot know).

Usage: smtp_sink.py HOST PORT MAILDIR [--cert PEM --key PEM [--implicit-tls]] [--auth USER:PASSWORD]
With --cert it offers STARTTLS (and requires it before AUTH); with --implicit-tls it speaks TLS from
the first byte (SMTPS). With --auth every message needs that login.
"""

import argparse
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult


class PolicyMailbox(Mailbox):
    def __init__(self, mail_dir):
        super().__init__(mail_dir)
        self.deferred = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("fail550"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("defer451"):
            tries = self.deferred.get(address, 0)
            self.deferred[address] = tries + 1
            if tries < 2:
                return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if any(r.split("@")[0].lower().startswith("drop-after-data") for r in envelope.rcpt_tos):
            server.transport.abort()
        return reply


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("mail_dir")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    args = parser.parse_args()

    options = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            options["ssl_context"] = context
        else:
            options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        options.update(authenticator=authenticate, auth_required=True, auth_require_tls=bool(args.cert) and not args.implicit_tls)
    controller = Controller(PolicyMailbox(args.mail_dir), hostname=args.host, port=args.port, **options)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
