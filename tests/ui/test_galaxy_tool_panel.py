"""What a biologist sees: our tool panel section and the "Describe image" form in Galaxy."""

import re

from playwright.sync_api import expect


def test_describe_image_form_from_tool_panel(page, galaxy_url, screenshot):
    page.goto(galaxy_url + "/", wait_until="domcontentloaded")
    section = page.get_by_text(re.compile(r"NeuroStation . Storage")).first
    expect(section).to_be_visible(timeout=90_000)
    section.click()
    tool_link = page.get_by_text("Describe image", exact=True).first
    expect(tool_link).to_be_visible(timeout=30_000)
    tool_link.click()
    form_title = page.locator(".tool-header, #tool-card-header, .portlet-title, h1, h2, h3, h4") \
        .filter(has_text="Describe image").first
    expect(form_title).to_be_visible(timeout=60_000)
    # The form shows our input label and the report-format choice.
    expect(page.get_by_text("Image or volume").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Report format").first).to_be_visible()
    screenshot(page, "galaxy-describe-image-form.png")
    assert page.errors == [], page.errors
