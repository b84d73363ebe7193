"""metrics/playground.html in headless Chromium: strokes drawn with the mouse, and each variant's prediction in the
page against `mnist-dnn predict` on the same 28 × 28 pixels, with the small run's trained models."""

import base64
import json
import math

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from helpers import VARIANTS
from mnist_dnn import paths
from mnist_dnn.cli import main
from mnist_dnn.tools import predict

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
SIDE = 280  # the drawing pad's canvas, in CSS pixels
STROKES = {  # polylines on the pad, as a hand draws each digit
    "seven": [[(70, 60), (210, 60), (130, 235)]],
    "zero": [[(140 + 55 * math.sin(t / 12 * math.pi), 140 - 90 * math.cos(t / 12 * math.pi)) for t in range(25)]],
    "one": [[(150, 40), (135, 245)]],
    "four": [[(110, 50), (80, 160), (190, 160)], [(170, 60), (165, 245)]],
}


def draw(browser, strokes):
    """Each stroke as a mouse drag on the pad (Selenium's offsets count from the element's centre)."""
    pad = browser.find_element(By.ID, "pad")
    for (x, y), *rest in strokes:
        actions = ActionChains(browser, duration=10).move_to_element_with_offset(pad, x - SIDE // 2, y - SIDE // 2)
        actions.click_and_hold()
        for x, y in rest:
            actions.move_to_element_with_offset(pad, round(x) - SIDE // 2, round(y) - SIDE // 2)
        actions.release().perform()


def predicted(capsys, model, image):
    main(["predict", "--model", str(model), "--image", str(image), "--json"])
    return json.loads(capsys.readouterr().out)


def test_the_page_predicts_a_drawn_digit_as_mnist_dnn_predict_does_for_every_variant(trained_project, browser,
                                                                                      tmp_path, capsys):
    root = trained_project[0]
    browser.get((root / paths.PLAYGROUND).as_uri())
    assert browser.execute_script("return window.playground.input") is None  # a blank pad: nothing to predict
    for name, strokes in STROKES.items():
        browser.find_element(By.ID, "clear").click()
        draw(browser, strokes)
        state = browser.execute_script("return window.playground")
        seen = np.array(state["input"], dtype=np.uint8).reshape(28, 28)
        assert seen.max() == 255 and (seen > 0).sum() > 40, name  # a digit: its ink stretched to full white
        drawn = tmp_path / f"{name}-pad.png"
        drawn.write_bytes(base64.b64decode(browser.execute_script(
            "return document.getElementById('pad').toDataURL('image/png').split(',')[1]")))
        assert np.abs(predict.to_mnist(predict.load_image(drawn)).numpy().astype(int) - seen).max() <= 24, name
        image = tmp_path / f"{name}.png"
        Image.fromarray(seen).save(image)
        rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
        assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == VARIANTS  # the table's order
        assert sorted(state["predictions"]) == sorted(VARIANTS)
        for variant, probabilities in state["predictions"].items():
            result = predicted(capsys, root / paths.model_file(variant), image)
            assert result["prediction"] == int(np.argmax(probabilities)), (name, variant)
            for top in result["top3"]:
                assert probabilities[top["digit"]] == pytest.approx(top["probability"], abs=1e-5), (name, variant)
