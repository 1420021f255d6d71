"""Graph nodes: one thin async function per step, domain logic lives in plain modules."""
