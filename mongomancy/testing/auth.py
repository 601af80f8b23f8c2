"""Authentication for the simulated members: SCRAM-SHA-256 as mongod speaks it.

Why: a wrong password must be testable for real (the engine's fatal path, ``mongomancy-ping``'s exit 4), not
by making pymongo raise.  With ``SimulatedReplicaSet(users={"ops": "secret"})`` every member runs the
conversation of RFC 5802 (SCRAM) with the SHA-256 hash of RFC 7677, framed as MongoDB frames it:
``saslStart`` / ``saslContinue`` commands whose ``payload`` is the SCRAM message, a ``conversationId``, a
``done`` flag, ``options.skipEmptyExchange`` (the final server message ends the conversation), the
``saslSupportedMechs`` field of ``hello`` and the ``speculativeAuthenticate`` first step inside ``hello``.

Like mongod, the server keeps only the derived keys (salt, iteration count, StoredKey, ServerKey), never the
password; a wrong password or an unknown user gets code 18 "Authentication failed." (mongod does not say
which); a command that needs a user on a connection that has none gets code 13 Unauthorized.  Changing a
password (:meth:`UserStore.set_password`) leaves connections that are already authenticated alone, as
mongod's ``updateUser`` does, and applies to every later conversation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import secrets
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import attrs
from bson import Binary
from pymongo.saslprep import saslprep

MECHANISM = "SCRAM-SHA-256"
#: mongod's default ``scramSHA256IterationCount``.
DEFAULT_ITERATIONS = 15_000
AUTH_DB = "admin"

#: Commands mongod runs for a connection that has not authenticated (the handshake, the conversation itself,
#: and the few commands whose ``requiresAuth()`` is false).
OPEN_COMMANDS = frozenset(
    {"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "ping", "buildInfo", "buildinfo", "logout"}
)

_AUTH_FAILED = {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"}


@attrs.frozen
class StoredCredential:
    """What the server keeps for a user (RFC 5802 section 3): enough to verify a proof, not the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def derive(
        cls, password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
    ) -> StoredCredential:
        """SaltedPassword := Hi(Normalize(password), salt, i); the keys follow from it (RFC 5802 s. 3)."""
        salt = secrets.token_bytes(28) if salt is None else salt
        salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.sha256(client_key).digest(),
            server_key=_hmac(salted, b"Server Key"),
        )


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def verify_proof(credential: StoredCredential, auth_message: bytes, proof: bytes) -> bytes | None:
    """The ServerSignature when ``proof`` is right, else None (RFC 5802 section 3).

    ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage); the proof holds if H(ClientKey) == StoredKey.
    """
    signature = _hmac(credential.stored_key, auth_message)
    if len(proof) != len(signature):
        return None
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), credential.stored_key):
        return None
    return _hmac(credential.server_key, auth_message)


class ScramError(Exception):
    """A conversation that cannot go on; ``reply`` is the error document mongod would send."""

    def __init__(self, reply: Mapping[str, Any]) -> None:
        super().__init__(reply.get("errmsg"))
        self.reply = dict(reply)


def _failed() -> ScramError:
    return ScramError(_AUTH_FAILED)


def _protocol_error(what: str) -> ScramError:
    return ScramError({"ok": 0.0, "errmsg": what, "code": 17, "codeName": "ProtocolError"})


def _attributes(message: bytes) -> dict[str, str]:
    """``a=1,b=2`` -> ``{"a": "1", "b": "2"}`` (RFC 5802 section 7: attribute-value pairs)."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise _protocol_error("SCRAM message is not UTF-8") from None
    pairs: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or len(name) != 1:
            raise _protocol_error(f"malformed SCRAM attribute {part!r}")
        pairs[name] = value
    return pairs


def _username(saslname: str) -> str:
    """RFC 5802 section 5.1: ``=2C`` is a comma and ``=3D`` an equals sign in a user name."""
    return saslname.replace("=2C", ",").replace("=3D", "=")


@attrs.define
class _Conversation:
    """One connection's SCRAM exchange in progress."""

    conversation_id: int
    user: str
    nonce: str
    #: client-first-message-bare + "," + server-first-message: the start of the AuthMessage.
    auth_prefix: bytes
    #: The client asked for ``options.skipEmptyExchange``: the server-final message ends the conversation.
    skip_empty_exchange: bool
    #: The proof was verified; without skipEmptyExchange one empty ``saslContinue`` still has to come.
    verified: bool = False


class UserStore:
    """The users of one simulated cluster and the authentication state of every member connection.

    Thread-safe: member connection threads call :meth:`screen` and :meth:`decorate_hello` concurrently, the
    test thread calls :meth:`set_password`.
    """

    def __init__(self, users: Mapping[str, str], iterations: int = DEFAULT_ITERATIONS) -> None:
        if not isinstance(users, Mapping) or not users:
            raise ValueError(f"users must be a non-empty mapping of user name to password, not {users!r}")
        self._iterations = iterations
        self._lock = threading.Lock()
        self._credentials: dict[str, StoredCredential] = {}
        for user, password in users.items():
            self.set_password(user, password)
        #: Per member connection: the authenticated user or the conversation in progress.
        self._sessions: weakref.WeakKeyDictionary[object, str | _Conversation] = weakref.WeakKeyDictionary()
        self._ids = itertools.count(1)

    def set_password(self, user: str, password: str) -> None:
        """Create ``user`` or change its password; later conversations use the new one."""
        if not isinstance(user, str) or not user:
            raise ValueError(f"a user name must be a non-empty string, not {user!r}")
        if not isinstance(password, str) or not password:
            raise ValueError(f"the password of {user!r} must be a non-empty string")
        credential = StoredCredential.derive(password, self._iterations)
        with self._lock:
            self._credentials[user] = credential

    def authenticated_user(self, connection: object) -> str | None:
        with self._lock:
            session = self._sessions.get(connection)
        return session if isinstance(session, str) else None

    # -- the hooks a member calls ----------------------------------------------------------------------------

    def screen(self, connection: object, command: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The reply to an authentication command, a refusal (13) for an unauthenticated one, or None.

        Why the conversation on the *connection*: MongoDB authenticates connections, not commands, so a
        connection that finished SCRAM keeps its user until it closes.
        """
        if command == "saslStart":
            return self._answer(connection, lambda: self._start(connection, body))
        if command == "saslContinue":
            return self._answer(connection, lambda: self._continue(connection, body))
        if command == "logout":
            with self._lock:
                self._sessions.pop(connection, None)
            return {"ok": 1.0}
        if command in OPEN_COMMANDS or self.authenticated_user(connection) is not None:
            return None
        return {
            "ok": 0.0,
            "errmsg": f"Command {command} requires authentication",
            "code": 13,
            "codeName": "Unauthorized",
        }

    def decorate_hello(self, connection: object, body: Mapping[str, Any], reply: dict[str, Any]) -> None:
        """Answer ``saslSupportedMechs`` and a ``speculativeAuthenticate`` first step inside ``hello``."""
        asked = body.get("saslSupportedMechs")
        if isinstance(asked, str):
            _db, _sep, user = asked.partition(".")
            with self._lock:
                known = user in self._credentials
            if known:
                reply["saslSupportedMechs"] = [MECHANISM]
        speculative = body.get("speculativeAuthenticate")
        if isinstance(speculative, Mapping) and speculative.get("saslStart"):
            # mongod answers a speculative first step that fails by leaving the field out; the client then
            # starts the conversation afresh and meets the error there.
            with contextlib.suppress(ScramError):
                reply["speculativeAuthenticate"] = self._start(connection, speculative)

    # -- the conversation -----------------------------------------------------------------------------------

    def _answer(self, connection: object, step: Any) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = step()
        except ScramError as error:
            with self._lock:
                self._sessions.pop(connection, None)
            return error.reply
        return reply

    def _start(self, connection: object, body: Mapping[str, Any]) -> dict[str, Any]:
        mechanism = body.get("mechanism")
        if mechanism != MECHANISM:
            raise ScramError(
                {
                    "ok": 0.0,
                    "errmsg": f"Received authentication for mechanism {mechanism} which is not enabled",
                    "code": 334,
                    "codeName": "MechanismUnavailable",
                }
            )
        payload = bytes(body.get("payload") or b"")
        header, sep, bare = payload.partition(b"n=")
        if header != b"n,," or not sep:  # no channel binding (RFC 5802 section 7, gs2-header "n,,")
            raise _protocol_error("SCRAM client-first-message must start with 'n,,'")
        bare = b"n=" + bare
        first = _attributes(bare)
        user, client_nonce = _username(first.get("n", "")), first.get("r", "")
        if not client_nonce:
            raise _protocol_error("SCRAM client-first-message has no nonce")
        with self._lock:
            credential = self._credentials.get(user)
        if credential is None:
            raise _failed()
        nonce = client_nonce + base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        server_first = (
            f"r={nonce},s={base64.b64encode(credential.salt).decode('ascii')},i={credential.iterations}"
        ).encode("ascii")
        options = body.get("options")
        skip = isinstance(options, Mapping) and bool(options.get("skipEmptyExchange"))
        conversation = _Conversation(next(self._ids), user, nonce, bare + b"," + server_first, skip)
        with self._lock:
            self._sessions[connection] = conversation
        return {
            "ok": 1.0,
            "conversationId": conversation.conversation_id,
            "done": False,
            "payload": Binary(server_first),
        }

    def _continue(self, connection: object, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            conversation = self._sessions.get(connection)
        if not isinstance(conversation, _Conversation) or body.get("conversationId") != (
            conversation.conversation_id
        ):
            raise _protocol_error("No SASL session state found")
        payload = bytes(body.get("payload") or b"")
        if conversation.verified:  # the empty exchange of a client without skipEmptyExchange
            return self._authenticated(connection, conversation, b"")
        without_proof, sep, proof_part = payload.rpartition(b",p=")
        final = _attributes(without_proof) if sep else {}
        if final.get("c") != "biws" or final.get("r") != conversation.nonce:
            raise _protocol_error("SCRAM client-final-message has a wrong channel binding or nonce")
        with self._lock:
            credential = self._credentials.get(conversation.user)
        if credential is None:
            raise _failed()
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise _failed() from None
        server_signature = verify_proof(credential, conversation.auth_prefix + b"," + without_proof, proof)
        if server_signature is None:
            raise _failed()
        server_final = b"v=" + base64.b64encode(server_signature)
        if conversation.skip_empty_exchange:
            return self._authenticated(connection, conversation, server_final)
        conversation.verified = True
        return {
            "ok": 1.0,
            "conversationId": conversation.conversation_id,
            "done": False,
            "payload": Binary(server_final),
        }

    def _authenticated(
        self, connection: object, conversation: _Conversation, payload: bytes
    ) -> dict[str, Any]:
        with self._lock:
            self._sessions[connection] = conversation.user
        return {
            "ok": 1.0,
            "conversationId": conversation.conversation_id,
            "done": True,
            "payload": Binary(payload),
        }
