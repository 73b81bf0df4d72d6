"""Pure shape math, one module per layer family."""
