"""Shared building blocks that import no app: errors, money, request context, admin helpers."""
