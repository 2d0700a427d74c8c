"""KEK rotation in the keystore: re-wrap jobs for KEK-A and KEK-B, version usage, and retirement."""
