from app.admin.routes import bp

__all__ = ["bp"]
