"""Schemathesis hooks for tests/openapi.rs: WHIP and WHEP bodies are text
(`application/sdp`, `application/trickle-ice-sdpfrag`), sent as generated."""
import schemathesis
from schemathesis.serializers import Serializer


def _text(value):
    return value if isinstance(value, (str, bytes)) else str(value)


@schemathesis.serializer("application/sdp", aliases=["application/trickle-ice-sdpfrag"])
class SdpText(Serializer):
    def as_requests(self, context, value):
        return {"data": _text(value)}

    def as_werkzeug(self, context, value):
        return {"data": _text(value)}
