"""The demo database: a small shop whose customers carry (fake) personal data worth masking."""

from __future__ import annotations

import random

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Linus",
    "Radia",
    "Tim",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Perlman",
]
# Luhn-valid test card numbers and well-formed, fictional identifiers.
CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "3782 822463 10005", "6011 1111 1111 1117"]
IBANS = ["DE89 3704 0044 0532 0130 00", "GB29 NWBK 6016 1331 9268 19", "FR14 2004 1010 0505 0001 3M02 606"]


def seed_sql(customers: int = 200, seed: int = 7) -> str:
    rng = random.Random(seed)
    rows = []
    for i in range(1, customers + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{i}@example.com".lower()
        phone = f"+1 415 555 {rng.randint(1000, 9999)}"
        ssn = f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"
        card = rng.choice(CARDS)
        iban = rng.choice(IBANS)
        notes = f"prefers email {email}; callback {phone}" if i % 5 == 0 else "vip" if i % 7 == 0 else ""
        rows.append(
            f"({i}, '{first} {last}', '{email}', '{phone}', '{ssn}', '{card}', '{iban}', '{notes}', "
            f"{rng.randint(0, 50000) / 100:.2f})"
        )
    orders = []
    statuses = ["new", "paid", "shipped", "refunded"]
    for order_id in range(1, customers * 3 + 1):
        customer = rng.randint(1, customers)
        total = rng.randint(100, 90000) / 100
        placed = f"now() - interval '{rng.randint(0, 400)} days'"
        reference = f"ORD-{100000 + order_id}"
        status = rng.choice(statuses)
        orders.append(f"({order_id}, {customer}, '{reference}', {total:.2f}, {placed}, '{status}')")
    return f"""
DROP TABLE IF EXISTS orders, customers CASCADE;
CREATE TABLE customers (
    id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, phone text, ssn text,
    card_number text, iban text, notes text, balance numeric(10, 2)
);
CREATE TABLE orders (
    id int PRIMARY KEY, customer_id int REFERENCES customers(id), reference text, total numeric(10, 2),
    placed_at timestamptz, status text
);
INSERT INTO customers VALUES {", ".join(rows)};
INSERT INTO orders VALUES {", ".join(orders)};
"""
