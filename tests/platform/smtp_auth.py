"""A real SMTP server that demands a user name and password, for the doctor's tests.

python3 tests/platform/smtp_auth.py PORT USER PASSWORD

It offers AUTH PLAIN and LOGIN without TLS (loopback only), refuses MAIL FROM before a
successful AUTH (530), and keeps every accepted message in memory (none should arrive).
"""

import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=port,
        authenticator=Authenticator(user, password),
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
