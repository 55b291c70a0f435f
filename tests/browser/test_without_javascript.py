"""The console with JavaScript off: every page shows its content, offers a plain reload instead of
a live refresh it cannot do, and its forms still work by a normal POST that redirects back."""

from conftest import fill, wait

from selenium.webdriver.common.by import By


def h1(driver):
    return driver.find_element(By.TAG_NAME, "h1").text


def test_every_page_reads_without_javascript(server, no_js_browser):
    driver = no_js_browser
    for name, path, title, content in fill(server):
        driver.get(server.url + path)
        assert h1(driver).startswith(title), path
        assert driver.find_elements(By.CSS_SELECTOR, content), f"{path}: no {content}"
        # The script never ran (it labels the toggle), so nothing may promise a live page...
        toggle = driver.find_element(By.ID, "live-toggle")
        assert toggle.get_attribute("aria-pressed") is None, "JavaScript ran"
        assert not toggle.is_displayed() and not driver.find_element(By.ID, "live-status").is_displayed(), path
        # ...and a plain link reloads it instead.
        reload = driver.find_element(By.ID, "reload")
        assert reload.is_displayed(), path
    reload.click()
    wait(driver).until(lambda d: h1(d) == "Schedules")


def test_forms_post_without_javascript(server, no_js_browser):
    driver = no_js_browser
    failed = server.enqueue("fail", {"times": 1}, wait=10, max_attempts=1)
    fill(server)

    driver.get(server.url + "/ui/queues")
    driver.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] button').click()
    wait(driver).until(lambda d: d.current_url.startswith(server.url + "/ui/queues?notice="))
    assert "paused" in driver.find_element(By.CSS_SELECTOR, ".notice").text
    assert server.request("GET", "/v1/queues")[1]["paused"] == ["default"]
    driver.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] button').click()
    wait(driver).until(lambda d: "resumed" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert server.request("GET", "/v1/queues")[1]["paused"] == []

    # A search is a GET form: the server answers with the canonical URL.
    driver.get(server.url + "/ui/tasks")
    driver.find_element(By.NAME, "kind").send_keys("fail")
    driver.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    wait(driver).until(lambda d: "kind=fail" in d.current_url and "match=" not in d.current_url)
    rows = [row.get_attribute("data-task") for row in driver.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr")]
    assert failed["id"] in rows

    # Bulk retry: the boxes belong to the form by its id, the confirmation is a page of its own.
    driver.find_element(By.CSS_SELECTOR, f'tr[data-task="{failed["id"]}"] input[type=checkbox]').click()
    driver.find_element(By.CSS_SELECTOR, 'button[value="retry"]').click()
    wait(driver).until(lambda d: h1(d) == "Confirm")
    driver.find_element(By.ID, "confirm").click()
    wait(driver).until(lambda d: "retry: 1 of 1 changed" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert server.wait_for(failed["id"])["state"] == "succeeded"

    driver.get(server.url + "/ui/schedules")
    row = '//tr[@data-schedule="nightly-invoice-export"]'
    driver.find_element(By.XPATH, row + '//button[text()="Disable"]').click()
    wait(driver).until(lambda d: d.current_url.startswith(server.url + "/ui/schedules?notice="))
    assert server.request("GET", "/v1/schedules/nightly-invoice-export")[1]["enabled"] is False
    assert driver.find_element(By.XPATH, row + '//td[@class="enabled"]').text == "disabled"
    driver.find_element(By.XPATH, row + '//button[text()="Run now"]').click()
    wait(driver).until(lambda d: h1(d).startswith("Task "))
    assert "enqueued now" in driver.find_element(By.CSS_SELECTOR, ".notice").text
