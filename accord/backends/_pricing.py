"""Cost of a call from a price table the user supplies.

``prices={"gpt-4o-mini": (0.15, 0.60)}`` gives US dollars per million input and output tokens;
:class:`Price` is the same as a model. accord ships no prices (they change); a model missing from
the table costs 0.

Caveat: names are matched exactly, first the backend's configured model, then the model name the
provider reported (often a dated snapshot such as ``gpt-4o-mini-2024-07-18``).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from accord.errors import ConfigError

__all__ = ["Price", "PriceTable", "normalize_prices", "cost_of"]


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: float = Field(ge=0)
    """Price of a million prompt tokens."""
    output_per_million: float = Field(ge=0)
    """Price of a million completion tokens."""


PriceTable = Mapping[str, Price | tuple[float, float]]


def normalize_prices(prices: PriceTable | None) -> dict[str, Price]:
    """Turn a user's table into ``{model: Price}``.

    Raises:
        ConfigError: an entry is neither a Price nor a pair of non-negative numbers.
    """
    table: dict[str, Price] = {}
    for model, entry in (prices or {}).items():
        if isinstance(entry, Price):
            table[model] = entry
            continue
        try:
            inp, out = entry
            table[model] = Price(input_per_million=float(inp), output_per_million=float(out))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"price for {model!r} must be Price(...) or (input_per_million, "
                f"output_per_million) with non-negative numbers, got {entry!r}."
            ) from exc
    return table


def cost_of(
    table: Mapping[str, Price], models: tuple[str, ...], prompt: int, completion: int
) -> float:
    """Dollars for ``prompt`` input and ``completion`` output tokens under the first known model."""
    for model in models:
        price = table.get(model)
        if price is not None:
            return (prompt * price.input_per_million + completion * price.output_per_million) / 1e6
    return 0.0
