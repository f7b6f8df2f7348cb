"""moto's server on loopback, with IAM authentication enforced.

Run with the venv's python (install.sh): `serve.py PORT NO_AUTH_COUNT`. The
first NO_AUTH_COUNT calls (the bootstrap in admin.py that creates the admin
key) pass without checks (moto's INITIAL_NO_AUTH_ACTION_COUNT); every later
call needs a known key, a valid SigV4 signature and an IAM policy allowing
the action.

One deviation from moto, towards AWS: STS AssumeRoleWithWebIdentity is an
unsigned call in AWS (the web-identity token is the credential), but moto
checks a signature on it once authentication is on. It is let through here;
the TLS front in tests/support/src/aws.rs verifies the token against the
issuer's JWKS and the role's trusted subject and audience before forwarding.
"""
import os
import sys

# moto reads its settings when imported.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = sys.argv[2]

from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.server import main  # noqa: E402

_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _authenticate_like_aws(self, iam_request_cls, resource="*"):
    if self._get_action() == "AssumeRoleWithWebIdentity":
        return None
    return _authenticate(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_like_aws

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
