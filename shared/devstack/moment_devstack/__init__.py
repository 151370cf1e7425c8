"""The embedded development stack: Tansu, OpenBao, SQLite and the three services in one command."""
