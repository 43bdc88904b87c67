from flask import Blueprint, render_template, request
from flask_login import login_required

from app.search import IndexMissing, index_built, search
from app.tasks.catalogue import CATALOGUE

bp = Blueprint("search", __name__)

PER_PAGE = 20
# Deep pages cost the database a scan of every match before them; nobody reads that far.
MAX_PAGE = 50


@bp.route("/search")
@login_required
def index() -> str:
    q = request.args.get("q", "").strip()
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    results, more, missing = [], False, False
    try:
        if q:
            # One extra row says whether there is a next page.
            found = search(q, limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
            results, more = found[:PER_PAGE], len(found) > PER_PAGE and page < MAX_PAGE
        else:
            missing = not index_built()
    except IndexMissing:
        missing = True
    return render_template(
        "search/index.html",
        q=q,
        results=results,
        page=page,
        per_page=PER_PAGE,
        more=more,
        missing=missing,
        reindex_title=CATALOGUE["reindex_search"].title,
    )
