"""Cheaper key derivation for test repositories.

`restic init` calibrates scrypt for about 0.1 s of CPU, and every restic process pays that again
when it opens the repository. The suite starts thousands of restic processes, so the template
repository's key is re-wrapped here with scrypt N=1024 (restic's own test suite lowers the KDF
the same way). The master key, the repository and the restic binary are the real ones: only the
password-derived key that unlocks the master key is cheaper. Production repositories are never
touched; `kamal-backup init` and `restic init` keep restic's calibrated parameters.

The key file format (restic's design document, "Keys, Encryption and MAC"): scrypt(password,
salt, N, r, p) gives 64 bytes, an AES-256 key and a Poly1305-AES key (k, r); `data` is
nonce || AES-256-CTR(master key JSON) || Poly1305-AES MAC of the ciphertext. A file's name is the
SHA-256 of its content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP_N = 1024


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes, bytes]:
    raw = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=1 << 28, dklen=64)
    return raw[:32], raw[32:48], raw[48:64]


def _mac(k: bytes, r: bytes, nonce: bytes, data: bytes) -> bytes:
    # One AES block of the nonce (Poly1305-AES), not bulk encryption: ECB is the primitive here.
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()  # noqa: S305
    s = encryptor.update(nonce) + encryptor.finalize()
    return Poly1305.generate_tag(r + s, data)


def _ctr(key: bytes, nonce: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def cheapen_keys(repo: Path, password: str, n: int = CHEAP_N, p: int = 1) -> None:
    """Re-wraps every key of the local repository `repo` with scrypt parameters N=`n`, p=`p`."""
    keys = repo / "keys"
    for keyfile in list(keys.iterdir()):
        doc = json.loads(keyfile.read_text())
        enc, mac_k, mac_r = _derive(
            password.encode(), base64.b64decode(doc["salt"]), doc["N"], doc["r"], doc["p"]
        )
        blob = base64.b64decode(doc["data"])
        nonce, ciphertext, tag = blob[:16], blob[16:-16], blob[-16:]
        if _mac(mac_k, mac_r, nonce, ciphertext) != tag:
            raise ValueError(f"{keyfile.name}: the password does not open this key")
        master = _ctr(enc, nonce, ciphertext)
        salt, nonce = os.urandom(64), os.urandom(16)
        enc, mac_k, mac_r = _derive(password.encode(), salt, n, 8, p)
        ciphertext = _ctr(enc, nonce, master)
        doc.update(
            N=n,
            r=8,
            p=p,
            salt=base64.b64encode(salt).decode(),
            data=base64.b64encode(
                nonce + ciphertext + _mac(mac_k, mac_r, nonce, ciphertext)
            ).decode(),
        )
        content = json.dumps(doc).encode()
        (keys / hashlib.sha256(content).hexdigest()).write_bytes(content)
        keyfile.unlink()


def production_cost_keys(repo: Path, password: str) -> None:
    """Gives the repository's key the cost restic's own calibration picks on this kind of
    machine (N=32768, p=6: about half a second per restic process), so that every restic the
    tool starts spends that long opening the repository before it writes anything. Tests that
    cancel a running operation use it: the operation is then reliably still running when the
    key arrives, as it is in production, however fast the cheap-key suite has become."""
    cheapen_keys(repo, password, n=32768, p=6)
