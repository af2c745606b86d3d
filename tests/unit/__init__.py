"""Pure logic: no nats-server, no child process (real SQLite and LMDB files in temp dirs are fine)."""
