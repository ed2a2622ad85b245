"""What the vendor downloads of generated claim codes: a CSV for label printers and firmware
flashing, and a printable label sheet (PDF, A4, 24 labels a page).

Each label has the unit's QR code (its label link, vendors/labels.py), the model, the identifiers
and the manual code in text, 4-3-4 digits. The sheet is built in memory: code_issues offers it for
at most LABEL_SHEET_MAX_UNITS units.
"""

from portal.csv import csv_lines

from .claim_codes import format_claim_code
from .labels import label_url

COLUMNS, ROWS = 3, 8
LABEL_WIDTH, LABEL_HEIGHT = 66.0, 34.0  # mm, on A4 (210 x 297)
MARGIN_X, MARGIN_Y = 6.0, 12.5
QR_SIZE = 28.0


def codes_csv(issue, records, origin):
    """CSV lines: the identifier fields, claim_code (11 digits) and label_url, one unit a line."""
    model = issue.device_model
    keys = [field.key for field in model.claiming_method.ordered_fields()]

    def rows():
        yield [*keys, "claim_code", "label_url"]
        for identifiers, code in records:
            link = label_url(origin, model.vendor.slug, model.slug, identifiers, code)
            yield [*identifiers.values(), code, link]

    return csv_lines(rows())


def _qr_image(link):
    import segno
    from PIL import Image

    # A fixed mask: choosing the best of eight costs six times as much, and any mask scans.
    qr = segno.make_qr(link, error="m", mask=1, boost_error=False)
    size = qr.symbol_size(border=4)[0]
    pixels = b"".join(bytes(0 if dark else 255 for dark in row) for row in qr.matrix_iter(border=4))
    return Image.frombytes("L", (size, size), pixels)


def label_sheet_pdf(issue, records, origin):
    """The label sheet as PDF bytes."""
    # Imported here: fpdf2 and Pillow take half a second to load, which every start of a process
    # that loads the admin (the import CLI, the workers) would pay otherwise.
    from fpdf import FPDF

    model = issue.device_model
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"Claim code labels: {model}")
    for number, (identifiers, code) in enumerate(records):
        if number % (COLUMNS * ROWS) == 0:
            pdf.add_page()
        column, row = number % COLUMNS, number // COLUMNS % ROWS
        x, y = MARGIN_X + column * LABEL_WIDTH, MARGIN_Y + row * LABEL_HEIGHT
        link = label_url(origin, model.vendor.slug, model.slug, identifiers, code)
        pdf.image(_qr_image(link), x, y + (LABEL_HEIGHT - QR_SIZE) / 2, QR_SIZE, QR_SIZE)
        text_x, text_width = x + QR_SIZE + 1, LABEL_WIDTH - QR_SIZE - 3
        pdf.set_xy(text_x, y + 5)
        pdf.set_font("Helvetica", size=7)
        pdf.multi_cell(text_width, 3.2, _latin1(str(model)), new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", "B", size=8)
        for value in identifiers.values():
            pdf.multi_cell(text_width, 3.6, _latin1(value), new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", size=6)
        pdf.cell(text_width, 4, "Claim code", new_x="LEFT", new_y="NEXT")
        pdf.set_font("Courier", "B", size=10)
        pdf.cell(text_width, 4, format_claim_code(code), new_x="LEFT", new_y="NEXT")
    return bytes(pdf.output())


def _latin1(text):
    # The PDF's built-in fonts cover Latin-1; anything else prints as "?" rather than failing.
    return text.encode("latin-1", "replace").decode("latin-1")
