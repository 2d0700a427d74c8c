"""The keystore server: ciphertexts, share_a wrapped under KEK-A, opaque wrap_b blobs, use grants."""
