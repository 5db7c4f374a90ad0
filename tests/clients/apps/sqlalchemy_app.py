"""A SQLAlchemy 2 ORM application: string and autoincrement keys, updates, deletes, a rollback.

python sqlalchemy_app.py sqlite:///books.db
python sqlalchemy_app.py postgresql+psycopg://...
"""

import sys

from _truth import Statements, report
from sqlalchemy import ForeignKey, String, create_engine, event, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"
    isbn: Mapped[str] = mapped_column(String(13), primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    copies: Mapped[int] = mapped_column(default=1)


class Loan(Base):
    __tablename__ = "loans"
    id: Mapped[int] = mapped_column(primary_key=True)  # autoincrement
    isbn: Mapped[str] = mapped_column(ForeignKey("books.isbn"))
    reader: Mapped[str] = mapped_column(String(40))


engine = create_engine(sys.argv[1])
statements = Statements()
batches = []  # rows of each executemany: SQLite runs the statement once per row
if engine.dialect.name == "sqlite":
    event.listen(engine, "connect", lambda dbapi, _record: statements.watch(dbapi), insert=True)


@event.listens_for(engine, "before_cursor_execute")
def _batches(_conn, _cursor, _statement, parameters, context, _executemany):
    if context.execute_style.name == "EXECUTEMANY":  # one cursor.executemany(parameters)
        batches.append(len(parameters))


Base.metadata.create_all(engine)

isbns = [f"978030640{i:04d}" for i in range(6)]
with Session(engine) as session:
    session.add_all(Book(isbn=i, title=f"Book {n}") for n, i in enumerate(isbns))
    session.commit()
    loans = [Loan(isbn=isbns[n % 6], reader=f"reader {n}") for n in range(8)]
    session.add_all(loans)
    session.commit()
    print("loan ids", [loan.id for loan in loans])
    session.add(Loan(isbn=isbns[0], reader="one more"))
    session.commit()

    book = session.get(Book, isbns[1])
    book.title = "Renamed"
    session.commit()
    session.execute(update(Book).where(Book.copies == 1).values(copies=Book.copies + 1))
    session.delete(session.get(Loan, loans[0].id))
    session.commit()

    session.add_all([Loan(isbn=isbns[2], reader="gone"), Book(isbn="9780140449136", title="x")])
    session.flush()
    session.execute(update(Book).values(copies=0))
    session.rollback()

    print("books", session.execute(select(Book.isbn, Book.copies).order_by(Book.isbn)).all())
    print("titles", session.scalars(select(Book.title).order_by(Book.isbn)).all())
    print("loans", session.scalar(select(func.count()).select_from(Loan)))

truth = {"changes": statements.total_changes(), "statements": statements.counts, "batches": batches}
engine.dispose()
report(**truth)
