from app.search_views.routes import bp

__all__ = ["bp"]
