"""Keys and JWTs for tailcast's access-control tests, made with PyJWT and
`cryptography` (third-party code, not tailcast's own).

    jwt_tool.py keygen DIR
        writes rsa.pem/rsa.pub, ec.pem/ec.pub (P-256), ed.pem/ed.pub
        (Ed25519) and jwks-<name>.json (the public key as a one-key JWKS
        with kid <name>) for each.
    jwt_tool.py sign ALG KEYFILE CLAIMS_JSON [KID]
        prints a JWT signed with ALG (HS256 takes a secret file; RS256,
        ES256 and EdDSA a private PEM); "exp": "+N" in the claims means N
        seconds from now.
    jwt_tool.py confused PUBLIC_PEM CLAIMS_JSON
        prints an HS256 JWT whose HMAC key is the public key PEM (the
        algorithm-confusion attack; PyJWT refuses to make it, so it is done
        by hand with hmac).
    jwt_tool.py none CLAIMS_JSON
        prints an unsigned JWT (alg: none).
"""
import base64
import hashlib
import hmac
import json
import pathlib
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(text: str) -> dict:
    value = json.loads(text)
    for key in ("exp", "nbf", "iat"):
        if isinstance(value.get(key), str) and value[key][:1] in "+-":
            value[key] = int(time.time()) + int(value[key])
    return value


def keygen(folder: str) -> None:
    out = pathlib.Path(folder)
    keys = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, key in keys.items():
        (out / f"{name}.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public = key.public_key()
        (out / f"{name}.pub").write_bytes(
            public.public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        algorithm = {"rsa": jwt.algorithms.RSAAlgorithm, "ec": jwt.algorithms.ECAlgorithm,
                     "ed": jwt.algorithms.OKPAlgorithm}[name]
        jwk = json.loads(algorithm.to_jwk(public))
        jwk["kid"] = name
        (out / f"jwks-{name}.json").write_text(json.dumps(jwk))


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "keygen":
        keygen(args[0])
    elif command == "sign":
        alg, keyfile, body = args[0], args[1], args[2]
        headers = {"kid": args[3]} if len(args) > 3 else None
        key = pathlib.Path(keyfile).read_bytes()
        if alg.startswith("HS"):
            key = key.strip()
        print(jwt.encode(claims(body), key, algorithm=alg, headers=headers))
    elif command == "confused":
        key = pathlib.Path(args[0]).read_bytes()
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims(args[1])).encode())
        signing_input = f"{head}.{payload}".encode()
        signature = b64(hmac.new(key, signing_input, hashlib.sha256).digest())
        print(f"{head}.{payload}.{signature}")
    elif command == "none":
        print(jwt.encode(claims(args[0]), None, algorithm="none"))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
