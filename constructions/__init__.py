"""Explicit weight constructions that solve MQAR, each with its claimed resources."""
