"""The console in a real browser: every page opens without console errors, a schedule is run now and
enabled again from its page, counts change as tasks run, a pool resized in the console reads back
from the API, a paused queue stops claims, a failed task is retried from its page, a search by an
args field, bulk retry with a confirmation, sign-in with a token, and the live refresh coming back
after a restart."""

import os
import time

import pytest
from conftest import console_errors, fill, wait

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

SCREENSHOTS = os.environ.get("SLUICE_CONSOLE_SCREENSHOTS")


def cell(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


def test_every_page_opens_without_console_errors(server, browser):
    for name, path, title, content in fill(server):
        browser.get(server.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith(title)
        assert browser.find_elements(By.CSS_SELECTOR, content), f"{path}: no {content}"
        # One refresh cycle ran without errors too, and kept the content.
        wait(browser).until(lambda d: d.find_element(By.ID, "live-status").text.startswith("live,"))
        assert browser.find_elements(By.CSS_SELECTOR, content), f"{path}: no {content} after a refresh"
        assert console_errors(browser) == [], path
        if SCREENSHOTS:
            browser.save_screenshot(os.path.join(SCREENSHOTS, f"console-{name}.png"))


def test_schedules_page_runs_and_enables_a_schedule(server, browser):
    fill(server)
    browser.get(server.url + "/ui/schedules")
    row = 'tr[data-schedule="heartbeat"]'
    # The fired schedule links its last task, whose page shows that task.
    last = server.request("GET", "/v1/schedules/heartbeat")[1]["last_task"]
    link = browser.find_element(By.CSS_SELECTOR, f"{row} .last-task a")
    assert link.text == last["id"] and browser.find_element(By.CSS_SELECTOR, f"{row} td.enabled").text == "disabled"
    nightly = 'tr[data-schedule="nightly-invoice-export"]'
    fires = [cell.get_attribute("datetime") for cell in browser.find_elements(By.CSS_SELECTOR, f"{nightly} td.next time")]
    assert fires == server.request("GET", "/v1/schedules/nightly-invoice-export")[1]["next_fires"][:3]
    browser.find_element(By.CSS_SELECTOR, f"{nightly} button.primary").click()   # run now
    wait(browser).until(lambda d: "enqueued now" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    task_id = browser.current_url.split("/ui/tasks/")[1].split("?")[0]
    task = server.request("GET", f"/v1/tasks/{task_id}")[1]
    assert task["queue"] == "customer-invoices-monthly-export" and task["idempotency_key"] is None
    browser.get(server.url + "/ui/schedules")
    browser.find_element(By.XPATH, '//tr[@data-schedule="heartbeat"]//button[text()="Enable"]').click()
    wait(browser).until(lambda d: "heartbeat enabled" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert server.request("GET", "/v1/schedules/heartbeat")[1]["enabled"] is True
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, f"{row} td.enabled").text == "enabled")
    # Enabled again, it fires again: the live refresh brings the new last task without a reload.
    wait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .last-task a").text != last["id"])
    browser.find_element(By.CSS_SELECTOR, f"{row} .last-task a").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Task "))
    assert "schedule:heartbeat@" in browser.page_source


def test_counts_change_as_tasks_run(server, browser):
    server.enqueue("echo", wait=10)
    browser.get(server.url + "/ui/queues")
    succeeded = 'tr[data-queue="default"] td.succeeded'
    wait(browser).until(lambda d: cell(d, succeeded) == "1")
    for _ in range(3):
        server.enqueue("echo")
    # No reload: the live refresh brings the new count.
    wait(browser).until(lambda d: cell(d, succeeded) == "4")


def test_the_live_refresh_keeps_what_was_typed_but_not_yet_sent(server, browser):
    browser.get(server.url + "/ui/pools")
    field = browser.find_element(By.CSS_SELECTOR, '[data-pool="default"] input[name="concurrency"]')
    field.clear()
    field.send_keys("9")
    browser.find_element(By.TAG_NAME, "h1").click()  # the field loses focus; its value is still unsent
    # The next refreshes hold off instead of swapping the form away.
    wait(browser).until(lambda d: d.find_element(By.ID, "live-status").text == "held while you fill in a form")
    field = browser.find_element(By.CSS_SELECTOR, '[data-pool="default"] input[name="concurrency"]')
    assert field.get_attribute("value") == "9"
    # A chosen bulk scope is kept the same way; an untouched page stays live.
    server.enqueue("echo", wait=10)
    browser.get(server.url + "/ui/tasks")
    wait(browser).until(lambda d: d.find_element(By.ID, "live-status").text.startswith("live,"))
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="scope"]')).select_by_value("all")
    browser.find_element(By.TAG_NAME, "h1").click()
    wait(browser).until(lambda d: d.find_element(By.ID, "live-status").text == "held while you fill in a form")
    assert Select(browser.find_element(By.CSS_SELECTOR, 'select[name="scope"]')).first_selected_option.get_attribute("value") == "all"


def test_resize_a_pool_in_the_console(server, browser):
    browser.get(server.url + "/ui/pools")
    field = browser.find_element(By.CSS_SELECTOR, '[data-pool="default"] input[name="concurrency"]')
    field.clear()
    field.send_keys("7")
    field.submit()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert "concurrency 7" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    status, pools = server.request("GET", "/v1/pools")
    assert pools["pools"][0]["target"] == 7
    assert browser.find_element(By.CSS_SELECTOR, '[data-pool="default"] b.target').text == "7"


def test_pause_a_queue_and_see_claims_stop(server, browser):
    server.enqueue("echo", wait=10)
    browser.get(server.url + "/ui/queues")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] button').click()
    wait(browser).until(lambda d: "paused" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert server.request("GET", "/v1/queues")[1]["paused"] == ["default"]
    task = server.enqueue("echo")
    time.sleep(1.0)  # twenty claim polls: a running queue would have started it
    assert server.request("GET", f"/v1/tasks/{task['id']}")[1]["state"] == "queued"
    wait(browser).until(lambda d: cell(d, 'tr[data-queue="default"] td.queued') == "1")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] button').click()
    wait(browser).until(lambda d: "resumed" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert server.wait_for(task["id"])["state"] == "succeeded"


def test_retry_a_failed_task_from_its_page(server, browser):
    task = server.enqueue("fail", {"message": "first attempt fails", "times": 1}, wait=10, max_attempts=1)
    assert task["state"] == "failed"
    browser.get(server.url + f"/ui/tasks/{task['id']}")
    assert "first attempt fails" in browser.page_source
    browser.find_element(By.XPATH, "//button[text()='Retry']").click()
    wait(browser).until(lambda d: "retry done" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    after = server.wait_for(task["id"])
    assert after["state"] == "succeeded" and after["attempt"] == 2
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".task-state").text == "succeeded")


def test_search_by_an_args_field(server, browser):
    mine = server.enqueue("echo", {"customer": 42})
    server.enqueue("echo", {"customer": 7})
    browser.get(server.url + "/ui/tasks")
    field = browser.find_element(By.NAME, "match")
    field.send_keys("customer=42")
    field.submit()
    # The form's "NAME=VALUE" field becomes the API's own parameter in the URL.
    wait(browser).until(lambda d: "args.customer=42" in d.current_url and "match=" not in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr")
    assert [row.get_attribute("data-task") for row in rows] == [mine["id"]]
    # The URL is the search: opening it again gives the same result.
    browser.get(browser.current_url)
    assert [r.get_attribute("data-task") for r in browser.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr")] == [mine["id"]]


def test_bulk_retry_asks_first(server, browser):
    failed = [server.enqueue("fail", {"times": 1}, wait=10, max_attempts=1)["id"] for _ in range(2)]
    browser.get(server.url + "/ui/tasks?kind=fail&state=failed")
    for task_id in failed:
        browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"] input[type=checkbox]').click()
    browser.find_element(By.CSS_SELECTOR, 'button[value="retry"]').click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Confirm")
    assert "Retry 2 selected tasks?" in browser.page_source
    assert server.request("GET", f"/v1/tasks/{failed[0]}")[1]["state"] == "failed"
    browser.find_element(By.ID, "confirm").click()
    wait(browser).until(lambda d: "retry: 2 of 2 changed" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    for task_id in failed:
        assert server.request("GET", f"/v1/tasks/{task_id}")[1]["state"] in ("queued", "running", "succeeded")


def test_sign_in_with_a_token(make_server, browser):
    server = make_server(token="console-s3cret")
    assert server.request("GET", "/v1/pools", token=False)[0] == 401
    browser.get(server.url + "/ui/")
    assert browser.current_url.endswith("/ui/sign-in")
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "sign-in").click()
    # The answer is a new page: wait for it, the click does not (a CI run read the old page).
    error = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".error"))[0]
    assert "not one of this server's tokens" in error.text
    browser.find_element(By.ID, "token").send_keys("console-s3cret")
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Overview")
    cookie = browser.get_cookie("sluice_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "s3cret" not in cookie["value"]
    if SCREENSHOTS:
        browser.delete_all_cookies()
        browser.get(server.url + "/ui/sign-in")
        browser.save_screenshot(os.path.join(SCREENSHOTS, "console-sign-in.png"))


def test_live_refresh_survives_a_restart(server, browser):
    browser.get(server.url + "/ui/")
    status = lambda d: d.find_element(By.ID, "live-status").text
    wait(browser).until(lambda d: status(d).startswith("live,"))
    server.stop()
    wait(browser).until(lambda d: status(d) == "server unreachable, retrying")
    server.start()
    wait(browser, 30).until(lambda d: status(d).startswith("live,"))
    # Errors while the server was away are expected (failed fetches); none after it came back:
    # the log is emptied, then read after a refresh that came later.
    browser.get_log("browser")
    before = status(browser)
    wait(browser).until(lambda d: status(d).startswith("live,") and status(d) != before)
    assert console_errors(browser) == []


def test_pause_live_refresh(server, browser):
    browser.get(server.url + "/ui/queues")
    browser.find_element(By.ID, "live-toggle").click()
    assert browser.find_element(By.ID, "live-toggle").text == "Resume live"
    server.enqueue("echo", wait=10)
    time.sleep(2.5)  # more than one refresh period: a paused page must not change
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-queue="default"]') == []
    browser.find_element(By.ID, "live-toggle").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-queue="default"]'))


def test_the_live_refresh_keeps_keyboard_focus_and_announces_only_changes(server, browser):
    """A keyboard user's place survives the refresh (a swap used to drop focus to the page's body
    every 2 s), and a screen reader hears the refresh's state when it changes, not every refresh."""
    server.enqueue("echo", wait=10)
    browser.get(server.url + "/ui/queues")
    status = lambda d: d.find_element(By.ID, "live-status").text
    wait(browser).until(lambda d: status(d).startswith("live,"))
    announced = browser.find_element(By.ID, "live-announce").text
    assert announced == "live"
    first = status(browser)
    wait(browser).until(lambda d: status(d).startswith("live,") and status(d) != first)
    assert browser.find_element(By.ID, "live-announce").get_attribute("textContent") == "live", "a refresh is not news"
    button = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] button')
    browser.execute_script("arguments[0].focus()", button)
    wait(browser).until(lambda d: status(d) == "held while a control has focus")
    time.sleep(2.5)  # more than one refresh period
    assert browser.execute_script("return document.activeElement") == button

