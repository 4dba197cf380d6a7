"""The SSH algorithms the gateway offers and prefers, on both its sides.

AES-GCM first: with AES-NI it is several times cheaper per byte than chacha20-poly1305 in asyncssh (which
runs ChaCha20 and Poly1305 as separate calls per packet), and every OpenSSH since 6.2 speaks it. asyncssh's
own defaults also offer CBC modes, 3DES, Blowfish and RC4; a security gateway offers none of them.
"""

from __future__ import annotations

# Agents' side: OpenSSH clients pick the first of *their* list the server offers, and they list chacha20
# first, so the listener leaves it out to get AES-GCM.
LISTENER_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
# Upstream side: the gateway is the client, its order decides; chacha20 stays for hosts without AES.
UPSTREAM_CIPHERS = (*LISTENER_CIPHERS, "chacha20-poly1305@openssh.com")
MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "umac-128@openssh.com",
)
