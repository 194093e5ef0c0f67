"""Templates: GET/POST /templates, GET/PATCH/DELETE /templates/{id}, POST …/copy.

Built-in templates are read-only (copy one to change it); a template used by an issue not
sent yet, and the built-in transactional one, cannot be deleted (409 saying why). A template
that does not render with sample data is refused with a 422 naming the part (``mjml`` or
``text``) and the line.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from newsletter.content import template_editing
from newsletter.content.models import Template, TemplateKind
from newsletter.content.templates import get_template, list_templates
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.schemas import (
    TemplateCopySchema,
    TemplateCreateSchema,
    TemplatePageSchema,
    TemplateQuerySchema,
    TemplateSchema,
    TemplateUpdateSchema,
)

#: both parts of a template at their longest, as JSON (escapes included), and some
TEMPLATE_BODY = 1024 * KIB


@bp.get("/templates")
@query(TemplateQuerySchema)
@bp.response(200, TemplatePageSchema, description="the templates, built-in ones first")
def list_all_templates(args: dict[str, Any]) -> dict[str, Any]:
    """Every template (or those of one ``kind``), without their sources."""
    kind = TemplateKind(args["kind"]) if args.get("kind") else None
    return {"items": list_templates(kind)}


@bp.post("/templates")
@body(TemplateCreateSchema, max_bytes=TEMPLATE_BODY)
@bp.response(201, TemplateSchema, description="the new template")
@errors(409)
def create_template(data: dict[str, Any]) -> tuple[Template, int, dict[str, str]]:
    """Make a template: ``kind`` is ``issue`` or ``transactional``; both parts must render
    with sample data (a 422 names the part and the line when they do not)."""
    template = template_editing.create_template(
        name=data["name"], kind=data["kind"], mjml=data["mjml"], text=data["text"]
    )
    return template, 201, {"Location": url_for("api.get_one_template", template_id=template.id)}


@bp.get("/templates/<int:template_id>")
@bp.response(200, TemplateSchema, description="the template with its sources")
@errors(404)
def get_one_template(template_id: int) -> Template:
    """One template with its MJML and text parts."""
    return get_template(template_id)


@bp.patch("/templates/<int:template_id>")
@body(TemplateUpdateSchema, max_bytes=TEMPLATE_BODY)
@bp.response(200, TemplateSchema, description="the changed template")
@errors(404, 409)
def update_one_template(data: dict[str, Any], template_id: int) -> Template:
    """Change a template's name, kind or parts (those given); built-in ones are read-only."""
    return template_editing.update_template(template_id, **data)


@bp.post("/templates/<int:template_id>/copy")
@body(TemplateCopySchema, max_bytes=4 * KIB)
@bp.response(201, TemplateSchema, description="the copy")
@errors(404, 409)
def copy_one_template(data: dict[str, Any], template_id: int) -> tuple[
    Template, int, dict[str, str]
]:
    """Copy a template (a built-in one, to change it); the body may name the copy."""
    template = template_editing.copy_template(template_id, data.get("name"))
    return template, 201, {"Location": url_for("api.get_one_template", template_id=template.id)}


@bp.delete("/templates/<int:template_id>")
@bp.response(204, description="deleted")
@errors(404, 409)
def delete_one_template(template_id: int) -> None:
    """Delete a template; refused (409) while an unsent issue uses it, and for built-ins."""
    template_editing.delete_template(template_id)
