"""Real-world statement and parameter shapes, with the ISBN-13 keys a user expects to see.

Known ISBNs used below (all checksums valid):

* 9780306406157 = 0-306-40615-2 (the textbook example)
* 9780804429573 = 0-8044-2957-X (an ISBN-10 with an X check digit)
* 9781234567897 (no ISBN-10 form needed)
* 9780140449136 (Penguin Classics)
* 9791090636071 (a 979-10 French ISBN; no ISBN-10 exists)

Values that must not be keys: 9780000000TEST (the predecessor's test value), 9780306406158 and
0306406153 (bad check digits), 4006381333931 (a valid EAN-13 barcode outside 978/979),
9790230671187 (a valid ISMN, the 979-0 music block), Unix timestamps, prices, phone numbers.
"""

from __future__ import annotations

A = "9780306406157"
B = "9780804429573"
C = "9781234567897"
D = "9780140449136"
E = "9791090636071"

# (what it is, SQL text, expected keys in order)
SQL_CASES: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "Calibre identifiers row, hyphenated ISBN-10",
        "INSERT INTO identifiers(book, type, val) VALUES (3, 'isbn', '0-306-40615-2')",
        (A,),
    ),
    (
        "Calibre identifiers, several rows, other identifier types",
        "INSERT INTO identifiers (book, type, val) VALUES (1, 'isbn', '9780804429573'), "
        "(2, 'isbn', '0306406152'), (3, 'amazon', 'B00ZVA3XL6'), (4, 'goodreads', '12345678')",
        (B, A),
    ),
    (
        "Calibre upsert with ISBN-10 and X",
        "INSERT OR REPLACE INTO identifiers (book, type, val) VALUES (7, 'isbn', '080442957X')",
        (B,),
    ),
    (
        "books row: ISBN-13 string, title, price, timestamp",
        "INSERT INTO books VALUES ('9780306406157', 'Signal Processing', 12.99, 1699900000)",
        (A,),
    ),
    (
        "UPDATE with ISBN as a numeric literal, price and timestamp beside it",
        "UPDATE books SET price = 12.99, updated_at = 1699900000 WHERE isbn = 9780306406157",
        (A,),
    ),
    (
        "IN list of mixed forms, de-duplicated in order",
        "SELECT * FROM books WHERE isbn IN "
        "('978-0-306-40615-7', '0-8044-2957-X', '9781234567897', '0306406152')",
        (A, B, C),
    ),
    (
        "ISBN only in a comment is not a literal",
        "-- backfill 9781234567897\nINSERT INTO t VALUES ('0306406152') /* 9780140449136 */",
        (A,),
    ),
    (
        "JSON document literal",
        'INSERT INTO docs(body) VALUES (\'{"isbn": "978-0-306-40615-7", '
        '"identifiers": {"isbn10": "080442957X"}}\')',
        (A, B),
    ),
    (
        "escaped quote in a literal with an ISBN label",
        "INSERT INTO notes VALUES ('O''Reilly edition, ISBN 0-306-40615-2 (pbk.)')",
        (A,),
    ),
    (
        "PostgreSQL E'' string with a backslash-escaped quote",
        "INSERT INTO notes VALUES (E'it\\'s ISBN-13: 978-1-234-56789-7', 'x')",
        (C,),
    ),
    (
        "PostgreSQL dollar-quoted literal",
        "INSERT INTO notes VALUES ($$ISBN 9780140449136$$, $tag$ISBN 979-10-90636-07-1$tag$)",
        (D, E),
    ),
    (
        "PostgreSQL array literal",
        "UPDATE lists SET isbns = ARRAY['9780306406157', '9781234567897'] WHERE id = 4",
        (A, C),
    ),
    (
        "URL and cover file name",
        "INSERT INTO covers VALUES ('https://openlibrary.org/isbn/9780140449136', "
        "'covers/9780306406157.jpg')",
        (D, A),
    ),
    (
        "space-separated list in one literal",
        "INSERT INTO t VALUES ('9780306406157 9781234567897')",
        (A, C),
    ),
    (
        "labelled ISBN-10 in prose",
        "INSERT INTO notes VALUES ('ordered ISBN 0306406152 on Monday')",
        (A,),
    ),
    ("the predecessor's test value", "INSERT INTO cached_books VALUES ('9780000000TEST', 'T')", ()),
    ("bad check digits", "INSERT INTO books VALUES ('9780306406158', '0306406153')", ()),
    ("bad check digit as number", "UPDATE books SET x = 1 WHERE isbn = 9780306406158", ()),
    ("EAN-13 barcode outside 978/979", "INSERT INTO products VALUES ('4006381333931', 1)", ()),
    ("ISMN (979-0) is not an ISBN", "INSERT INTO scores VALUES ('9790230671187')", ()),
    (
        "timestamps, prices, dates",
        "INSERT INTO events VALUES (1699900000123, 1699900000, '2023-11-13 18:26:40', 19.99, "
        "'2023-11-13T18:26:40.123456+00:00')",
        (),
    ),
    (
        "phone numbers",
        "INSERT INTO contacts VALUES ('+1 555-123-4567', '(555) 123-4567', '+44 20 7946 0958')",
        (),
    ),
    ("14 digits is not an ISBN", "INSERT INTO t VALUES ('97803064061570', 97803064061570)", ()),
    (
        "unlabelled bare ISBN-10 in prose",
        "INSERT INTO notes VALUES ('ordered 0306406152 today')",
        (),
    ),
    ("placeholders only (sqlite)", "INSERT INTO books(isbn, title) VALUES (?, ?)", ()),
    ("placeholders only (pyformat)", "INSERT INTO books VALUES (%(isbn)s, %s, $1, :isbn)", ()),
    ("quoted identifier is not a value", 'SELECT "9780306406157" FROM t', ()),
    ("decimal number is not an ISBN", "UPDATE t SET v = 9780306406157.5", ()),
    ("empty statement", "", ()),
]

# (what it is, parameters of one call, expected keys)
PARAM_CASES: list[tuple[str, object, tuple[str, ...]]] = [
    ("sqlite ? tuple", ("9780306406157", "Signal Processing", 12.99, None), (A,)),
    ("list of params", ["978-0-306-40615-7", "T", 1], (A,)),
    ("ISBN-10 with X, hyphenated", ("0-8044-2957-X", "title"), (B,)),
    ("ISBN-10 with lowercase x", ("080442957x",), (B,)),
    ("ISBN-10 spaced", ("0 306 40615 2",), (A,)),
    ("ISBN-13 spaced", ("978 0 306 40615 7",), (A,)),
    ("978- then ten digits", ("978-0306406157",), (A,)),
    ("surrounding whitespace", ("  9780306406157\n",), (A,)),
    ("named :isbn dict, ISBN label", {"isbn": "ISBN 978-0-306-40615-7", "title": "T"}, (A,)),
    ("pyformat dict, ISBN-13: label", {"isbn": "ISBN-13: 978-1-234-56789-7", "p": 9.99}, (C,)),
    ("ISBN-10: label", {"isbn": "ISBN-10: 0-8044-2957-X"}, (B,)),
    ("label without space", ("ISBN9780140449136",), (D,)),
    ("int ISBN-13", (9780306406157, "T", 3), (A,)),
    ("979 int ISBN-13", (9791090636071,), (E,)),
    ("integral float ISBN-13 (pandas column with a gap)", (9780306406157.0,), (A,)),
    ("int ISBN-10 lost its leading zero: not a key", (306406152,), ()),
    ("int ISBN-10 without a leading zero: still not a key (timestamps)", (1234567897,), ()),
    (
        "nested JSON text",
        (
            '{"book": {"ids": [{"type": "isbn", "val": "0306406152"}, '
            '{"type": "isbn13", "val": 9781234567897}]}}',
        ),
        (A, C),
    ),
    (
        "the brief's JSON",
        ('{"isbn": "978-0-306-40615-7", "identifiers": {"isbn10": "0306406152"}}',),
        (A,),
    ),
    ("JSON array of strings", ('["9780306406157", "0-8044-2957-X"]',), (A, B)),
    ("JSON object keyed by ISBN", ('{"9780306406157": {"price": 12.5}}',), (A,)),
    ("JSON with a timestamp number", ('{"ts": 1699900000, "isbn": "080442957X"}',), (B,)),
    ("JSON inside a JSON string", ('{"raw": "{\\"isbn\\": \\"0306406152\\"}"}',), (A,)),
    ("malformed JSON falls back to text", ('{"isbn": "9780306406157", ',), (A,)),
    ("free-text description", ("Hardcover. ISBN 0-306-40615-2; also 9781234567897.",), (A, C)),
    ("several ISBNs in one row, de-duplicated", ("9780306406157", "0306406152", C), (A, C)),
    ("executemany-style row as dict", {"a": D, "b": "x", "c": None}, (D,)),
    ("PostgreSQL array parameter (list)", (["9780306406157", "0-8044-2957-X"], 3), (A, B)),
    ("nested tuple parameter", ((("9780140449136",),),), (D,)),
    ("dict value inside params", ({"isbn": "9780306406157"},), (A,)),
    ("short ASCII bytes", (b"9780306406157",), (A,)),
    ("bytearray", (bytearray(b"0-306-40615-2"),), (A,)),
    ("memoryview", (memoryview(b"080442957X"),), (B,)),
    ("the predecessor's test value", ("9780000000TEST", "Test"), ()),
    ("bad check digits", ("9780306406158", "0306406153", 9780306406158), ()),
    ("EAN-13 barcode outside 978/979", ("4006381333931", 4006381333931), ()),
    ("ISMN", ("9790230671187",), ()),
    ("phone numbers", ("555-123-4567", "+44 20 7946 0958", "(555) 123-4567"), ()),
    ("timestamps", (1699900000, 1699900000.123, 1699900000123, "2023-11-13 18:26:40"), ()),
    ("prices and ids", (12.99, 42, "42", -9780306406157), ()),
    ("digits glued to words", ("ref9780306406157", "9780306406157abc", "0-306-40615-2-3a"), ()),
    ("a word after a space does not matter", ("9780306406157 3abc",), (A,)),
    ("blob bytes", (b"\xff\xfe" * 100, b"\x00" * 13), ()),
    ("bool is not an int key", (True, False), ()),
    ("None", None, ()),
    ("empty tuple", (), ()),
    ("empty dict", {}, ()),
    ("no ISBN-like values", (1, "title", 2.5, None), ()),
]
