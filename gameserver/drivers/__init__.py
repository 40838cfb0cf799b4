"""Drivers: listening sockets and their connections; they feed the codecs, write bytes and enforce limits."""
