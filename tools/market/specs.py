"""Symbol specifications (digits, pip size, contract, lots, spread) from settings.symbols."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.protocols import UnknownSymbolError
from tools.schemas import SymbolSpec

if TYPE_CHECKING:
    from config import Settings


def load_specs(settings: Settings) -> dict[str, SymbolSpec]:
    """One SymbolSpec per configured symbol, keyed by the upper-case symbol name."""
    return {
        name.upper(): SymbolSpec(symbol=name.upper(), **spec.model_dump())
        for name, spec in settings.symbols.items()
    }


def spec_for(specs: dict[str, SymbolSpec], symbol: str) -> SymbolSpec:
    """The spec of `symbol` (case-insensitive); the error lists the known symbols for the trader."""
    key = symbol.strip().upper()
    try:
        return specs[key]
    except KeyError:
        known = ", ".join(sorted(specs)) or "(none configured)"
        raise UnknownSymbolError(f"unknown symbol '{key}'; known: {known}") from None
