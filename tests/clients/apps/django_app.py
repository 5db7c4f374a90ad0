"""A Django project on SQLite: migrate (contenttypes, auth, our own app), then the ORM."""

import sqlite3
import sys

import django
from _truth import Statements, report
from django.conf import settings

statements = Statements()


class Traced(sqlite3.Connection):
    """Django's connections, traced from their first statement (OPTIONS: factory)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        statements.watch(self)


settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sys.argv[1],
            "OPTIONS": {"factory": Traced},
        }
    },
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "library"],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402

batches = []  # rows of each executemany


def _count_batches(execute, sql, params, many, context):
    if many:
        params = list(params)
        batches.append(len(params))
    return execute(sql, params, many, context)


with connection.execute_wrapper(_count_batches):
    call_command("migrate", verbosity=0)
    from library.models import Book, Review

    first = Book.objects.create(isbn="9780306406157", title="Numbers")
    print("created", first.id)
    Book.objects.bulk_create([Book(isbn=f"978014044{i:04d}", title=f"Book {i}") for i in range(5)])
    Review.objects.bulk_create([Review(book=first, stars=s) for s in (3, 4, 5)])
    first.title = "Numbers, renamed"
    first.save()
    print("updated", Book.objects.filter(copies=1).update(copies=F("copies") + 1))
    with transaction.atomic():
        Book.objects.filter(isbn__startswith="9780140440").delete()
    try:
        with transaction.atomic():
            Book.objects.create(isbn="9780000000002", title="rolled back")
            raise RuntimeError("undo")
    except RuntimeError:
        pass
    print("deleted", first.delete())
    print("books", list(Book.objects.order_by("isbn").values_list("isbn", "copies")))
    print("reviews", Review.objects.count())
    from django.contrib.auth.models import Permission

    print("permissions", Permission.objects.count())
report(changes=connection.connection.total_changes, statements=statements.counts, batches=batches)
