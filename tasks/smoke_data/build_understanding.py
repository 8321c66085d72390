"""Build the embedded smoke data of the eleven understanding tasks: tiny TSVs in VLMEvalKit's schemas.

Every file has the columns of the real VK TSV (VK e8e78f05 dataset classes and their scorers read them):
base64 PNG images drawn here with PIL (shapes, colours, text), image cells that reuse another row's image by
its index (MME pairs, MMBench circular copies at index + k*1e6), a list-of-images cell (MMMU), option
columns A-D with missing values, list-literal answers (OCRBench, MathVista choices/skills).
Run ``python -m tasks.smoke_data.build_understanding`` to regenerate; output is byte-for-byte deterministic
for a given Pillow version.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "understanding"
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 70, 220), "yellow": (235, 200, 20),
           "black": (0, 0, 0), "white": (255, 255, 255)}


def draw(shape: str = "circle", colour: str = "red", text: str = "", size: int = 96, bg: str = "white") -> str:
    """A base64 PNG of one shape and optional text (PIL's built-in bitmap font, so no font files)."""
    img = Image.new("RGB", (size, size), COLOURS[bg])
    d = ImageDraw.Draw(img)
    m = size // 5
    box = (m, m, size - m, size - m)
    if shape == "circle":
        d.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        d.rectangle(box, fill=COLOURS[colour])
    elif shape == "triangle":
        d.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=COLOURS[colour])
    elif shape == "bars":
        for i, h in enumerate((30, 60, 45)):
            x0 = m + i * (size - 2 * m) // 3
            d.rectangle((x0 + 2, size - m - h * (size - 2 * m) // 100, x0 + (size - 2 * m) // 3 - 2, size - m),
                        fill=COLOURS[colour])
    if text:
        d.text((4, 4), text, fill=COLOURS["black"])
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_tsv(name: str, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.tsv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return path


def rotate(options: list[str], answer: str, k: int) -> tuple[list[str], str]:
    """Circular copy k: options shifted by k, the answer letter follows its text (as MMBench's copies do)."""
    rot = options[k:] + options[:k]
    return rot, "ABCD"[rot.index(options["ABCD".index(answer)])]


def mmbench(name: str, cn: bool) -> None:
    qs = [
        (draw("circle", "red", "A1"), "图中是什么形状？" if cn else "What shape is shown in the image?",
         ["circle", "square", "triangle", "star"] if not cn else ["圆形", "正方形", "三角形", "星形"], "A",
         "coarse_perception", "image_scene", None),
        (draw("square", "blue"), "图中形状是什么颜色？" if cn else "What colour is the shape?",
         ["red", "green", "blue", "yellow"] if not cn else ["红色", "绿色", "蓝色", "黄色"], "C",
         "finegrained_perception (instance-level)", "attribute_recognition",
         "图片只有一个形状。" if cn else "The image holds one shape."),
        (draw("triangle", "green", "3"), "图中写的数字是几？" if cn else "Which number is written in the corner?",
         ["3", "8"], "A", "logic_reasoning", "structuralized_imagetext_understanding", None),
    ]
    cols = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
            "l2-category", "comment", "split"]
    rows = []
    for qi, (img, q, opts, ans, l2, cat, hint) in enumerate(qs):
        for k in range(len(opts)):
            rot, a = rotate(opts, ans, k)
            idx = qi + k * 1_000_000
            row = {"index": idx, "question": q, "hint": hint, "answer": a, "category": cat,
                   "image": img if k == 0 else str(qi), "source": "smoke", "l2-category": l2, "split": "dev"}
            row.update({"ABCD"[j]: o for j, o in enumerate(rot)})
            rows.append(row)
    write_tsv(name, cols, rows)


def main() -> None:
    mmbench("MMBench_DEV_EN", cn=False)
    mmbench("MMBench_DEV_CN", cn=True)

    write_tsv("SEEDBench_IMG", ["index", "question", "A", "B", "C", "D", "answer", "category", "image"], [
        {"index": 1, "question": "How many shapes are in the image?", "A": "One", "B": "Two", "C": "Three",
         "D": "Four", "answer": "A", "category": "Instances Counting", "image": draw("circle", "yellow")},
        {"index": 2, "question": "What is the colour of the object?", "A": "Red", "B": "Green", "C": "Blue",
         "D": "Black", "answer": "B", "category": "Instance Attributes", "image": draw("square", "green")},
        {"index": 3, "question": "Where is the text placed?", "A": "Top left", "B": "Bottom right",
         "C": "Centre", "D": "Nowhere", "answer": "A", "category": "Instance Location",
         "image": draw("triangle", "blue", "hi")},
        {"index": 4, "question": "What kind of scene is it?", "A": "A plain background with a shape",
         "B": "A street", "C": "A forest", "D": "An office", "answer": "A", "category": "Scene Understanding",
         "image": draw("bars", "red", size=128)},
    ])

    write_tsv("MMStar", ["index", "question", "A", "B", "C", "D", "answer", "category", "l2-category", "bench",
                         "image"], [
        {"index": 0, "question": "Which shape is drawn?", "A": "circle", "B": "square", "C": "triangle",
         "D": "none", "answer": "C", "category": "coarse perception", "l2-category": "image scene and topic",
         "bench": "smoke", "image": draw("triangle", "red")},
        {"index": 1, "question": "What colour dominates the shape?", "A": "blue", "B": "red", "C": "green",
         "D": "yellow", "answer": "A", "category": "fine-grained perception",
         "l2-category": "attribute recognition", "bench": "smoke", "image": draw("circle", "blue")},
        {"index": 2, "question": "Which bar is the tallest?", "A": "left", "B": "middle", "C": "right",
         "D": "all equal", "answer": "B", "category": "math", "l2-category": "numeric commonsense and calculation",
         "bench": "smoke", "image": draw("bars", "green", size=128)},
        {"index": 3, "question": "How many bars are drawn?", "A": "2", "B": "3", "C": "4", "D": "5",
         "answer": "B", "category": "math", "l2-category": "numeric commonsense and calculation",
         "bench": "smoke", "image": "2"},
    ])

    write_tsv("AI2D_TEST", ["index", "question", "A", "B", "C", "D", "answer", "image"], [
        {"index": 0, "question": "Which label marks the filled shape?", "A": "a", "B": "b", "C": "c", "D": "d",
         "answer": "A", "image": draw("circle", "green", "a")},
        {"index": 1, "question": "What does the diagram show?", "A": "a bar chart", "B": "a food web",
         "C": "a life cycle", "D": None, "answer": "A", "image": draw("bars", "blue", size=112)},
        {"index": 2, "question": "Which part is coloured red?", "A": "the square", "B": "the background",
         "C": None, "D": None, "answer": "A", "image": draw("square", "red", "b")},
    ])

    hb_cols = ["index", "image", "question", "answer", "category", "l2-category"]
    fig = draw("bars", "blue", "2024", size=128)
    write_tsv("HallusionBench", hb_cols, [
        {"index": "VD_chart_1_0_0_0", "image": fig, "question": "Is the middle bar the tallest?", "answer": "Yes",
         "category": "VD", "l2-category": "chart"},
        {"index": "VD_chart_1_0_0_1", "image": "VD_chart_1_0_0_0", "question": "Is the left bar the tallest?",
         "answer": "No", "category": "VD", "l2-category": "chart"},
        {"index": "VD_chart_1_0_1_0", "image": draw("bars", "red", "2023", size=128),
         "question": "Is the middle bar the tallest?", "answer": "Yes", "category": "VD", "l2-category": "chart"},
        {"index": "VS_map_1_3_0_0", "image": draw("square", "green", "map"),
         "question": "Is the shape a circle?", "answer": "No", "category": "VS", "l2-category": "map"},
        {"index": "VS_map_1_3_1_0", "image": draw("circle", "green", "map"),
         "question": "Is the shape a circle?", "answer": "Yes", "category": "VS", "l2-category": "map"},
    ])

    write_tsv("OCRBench", ["index", "image", "question", "answer", "category"], [
        {"index": 0, "image": draw("square", "white", "HELLO", size=80), "question": "what is written in the image?",
         "answer": "['HELLO']", "category": "Regular Text Recognition"},
        {"index": 1, "image": draw("circle", "yellow", "42", size=64), "question": "what number is shown?",
         "answer": "['42', 'forty-two']", "category": "Digit String Recognition"},
        {"index": 2, "image": draw("square", "white", "x^2+1", size=96), "question": "Write out the expression.",
         "answer": "['x^{2} + 1', 'x^2+1']", "category": "Handwritten Mathematical Expression Recognition"},
        {"index": 3, "image": draw("bars", "green", "Total: 7", size=112), "question": "What is the total?",
         "answer": "['7']", "category": "Doc-oriented VQA"},
    ])

    mme_rows = []
    specs = [("existence", "circle", "red", "Is there a circle in this image? Please answer yes or no.", "Yes",
              "Is there a square in this image? Please answer yes or no.", "No"),
             ("color", "square", "blue", "Is the square blue? Please answer yes or no.", "Yes",
              "Is the square red? Please answer yes or no.", "No"),
             ("numerical_calculation", "triangle", "green", "Is the answer to 1+2 shown as 3? Please answer yes or no.",
              "Yes", "Is the answer to 1+2 shown as 4? Please answer yes or no.", "No")]
    for i, (cat, shape, colour, q1, a1, q2, a2) in enumerate(specs):
        img = draw(shape, colour, "1+2=3" if cat == "numerical_calculation" else "", size=96)
        path = f"MME/{cat}/{i:04d}.png"
        mme_rows.append({"index": 2 * i, "image": img, "question": q1, "answer": a1, "category": cat, "image_path": path})
        mme_rows.append({"index": 2 * i + 1, "image": str(2 * i), "question": q2, "answer": a2, "category": cat,
                         "image_path": path})
    write_tsv("MME", ["index", "image", "question", "answer", "category", "image_path"], mme_rows)

    write_tsv("MMVet", ["index", "image", "question", "answer", "category"], [
        {"index": 0, "image": draw("square", "white", "3+4=?", size=96), "question": "What is the answer to the sum?",
         "answer": "7", "category": "ocr,math"},
        {"index": 1, "image": draw("circle", "red"), "question": "What colour is the circle?",
         "answer": "red<OR>dark red", "category": "rec"},
        {"index": 2, "image": draw("bars", "blue", size=128), "question": "Which bars are shorter than the middle one?",
         "answer": "left<AND>right", "category": "rec,spat"},
    ])

    cols = ["index", "question", "A", "B", "C", "D", "answer", "split", "category", "l2-category", "id",
            "question_type", "image"]
    two = repr([draw("circle", "red", size=64), draw("square", "blue", size=64)])
    write_tsv("MMMU_DEV_VAL", cols, [
        {"index": 1, "question": "<image 1> Which shape is drawn?", "A": "circle", "B": "square", "C": "triangle",
         "D": "hexagon", "answer": "C", "split": "validation", "category": "Art", "l2-category": "Art", "id":
         "validation_Art_1", "question_type": "multiple-choice", "image": draw("triangle", "yellow")},
        {"index": 2, "question": "<image 1> and <image 2>: which image shows a square?", "A": "<image 1>",
         "B": "<image 2>", "answer": "B", "split": "validation", "category": "Math", "l2-category": "Math",
         "id": "validation_Math_2", "question_type": "multiple-choice", "image": two},
        {"index": 3, "question": "<image 1> How many bars are there?", "answer": "3", "split": "validation",
         "category": "Math", "l2-category": "Math", "id": "validation_Math_3", "question_type": "open",
         "image": draw("bars", "green", size=112)},
        {"index": 4, "question": "<image 1> What colour is the shape?", "A": "red", "B": "blue", "C": "green",
         "D": "black", "answer": "A", "split": "dev", "category": "Design", "l2-category": "Design",
         "id": "dev_Design_1", "question_type": "multiple-choice", "image": draw("circle", "red", size=80)},
    ])

    mv_cols = ["index", "image", "question", "answer", "answer_option", "choices", "question_type", "answer_type",
               "precision", "unit", "task", "skills", "source", "context", "grade", "img_height", "img_width"]
    write_tsv("MathVista_MINI", mv_cols, [
        {"index": 1, "image": draw("bars", "blue", size=128), "question": "Hint: Please answer the question requiring an "
         "integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: How many bars are in the chart?",
         "answer": "3", "question_type": "free_form", "answer_type": "integer", "task": "figure question answering",
         "skills": "['arithmetic reasoning', 'statistical reasoning']", "source": "smoke", "context": "bar chart",
         "grade": "elementary school", "img_height": 128, "img_width": 128},
        {"index": 2, "image": draw("square", "red", "2.5", size=96), "question": "Hint: Please answer the question requiring a "
         "floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\n"
         "Question: What number is written on the image?", "answer": "2.5", "question_type": "free_form",
         "answer_type": "float", "precision": 1.0, "task": "textbook question answering",
         "skills": "['numeric commonsense']", "source": "smoke", "context": "synthetic scene", "grade": "high school",
         "img_height": 96, "img_width": 96},
        {"index": 3, "image": draw("circle", "green", size=96), "question": "Hint: Please answer the question and provide the "
         "correct option letter, e.g., A, B, C, D, at the end.\nQuestion: What colour is the circle?\nChoices:\n"
         "(A) red\n(B) green\n(C) blue\n(D) yellow", "answer": "green", "answer_option": "B",
         "choices": "['red', 'green', 'blue', 'yellow']", "question_type": "multi_choice", "answer_type": "text",
         "task": "visual question answering", "skills": "['scientific reasoning']", "source": "smoke",
         "context": "synthetic scene", "grade": "daily life", "img_height": 96, "img_width": 96},
        {"index": 4, "image": draw("triangle", "yellow", size=96), "question": "Hint: Please answer the question requiring an "
         "integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: How many corners does the "
         "shape have?", "answer": "3", "question_type": "free_form", "answer_type": "integer",
         "task": "geometry problem solving", "skills": "['geometry reasoning']", "source": "smoke",
         "context": "geometry diagram", "grade": "elementary school", "img_height": 96, "img_width": 96},
    ])


if __name__ == "__main__":
    main()
