//! Rendering tests: text snapshots (insta) of every panel and popup on
//! `TestBackend`, and a sweep of sizes that must never panic.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Modifier;

use super::render;
use crate::app::{AgentChoice, App, Mode, Panel, StartDialog, StartStep};
use crate::fixtures::{self, finished_run, idle_cluster, mid_run, node, run_id};

/// The screen as text: one line per row, trailing blanks trimmed.
fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| render(app, f)).expect("draws");
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        let mut skip = 0usize;
        for x in 0..buf.area.width {
            let cell = &buf[(x, y)];
            if skip == 0 {
                line.push_str(cell.symbol());
                skip = unicode_width(cell.symbol()).saturating_sub(1);
            } else {
                skip -= 1;
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Columns a symbol takes (the ones drawn here are 1 wide).
fn unicode_width(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

fn on(mut app: App, panel: Panel) -> App {
    app.panel = panel;
    app
}

fn with(mut app: App, mode: Mode) -> App {
    app.mode = mode;
    app
}

fn dialog(step: StartStep, choice: AgentChoice) -> Mode {
    Mode::Start(StartDialog {
        step,
        scenario: 0,
        choice,
        count: 2,
        label: 1,
        // Both states drawn: off while choosing agents, on when confirming.
        rebalance: step == StartStep::Confirm,
    })
}

#[test]
fn panels_mid_run_80x24() {
    for panel in Panel::ALL {
        let name = format!("{}_mid_run_80x24", panel.title().to_lowercase());
        insta::assert_snapshot!(name, draw(&on(mid_run(), panel), 80, 24));
    }
}

#[test]
fn panels_mid_run_120x40() {
    for panel in Panel::ALL {
        let name = format!("{}_mid_run_120x40", panel.title().to_lowercase());
        insta::assert_snapshot!(name, draw(&on(mid_run(), panel), 120, 40));
    }
}

#[test]
fn overview_160x48() {
    insta::assert_snapshot!(
        "overview_mid_run_160x48",
        draw(&on(mid_run(), Panel::Overview), 160, 48)
    );
    insta::assert_snapshot!(
        "overview_idle_160x48",
        draw(&on(idle_cluster(), Panel::Overview), 160, 48)
    );
}

#[test]
fn the_latency_charts_follow_the_selected_name() {
    let mut app = on(mid_run(), Panel::Latency);
    app.selected[Panel::Latency.index()] = 2;
    let screen = draw(&app, 120, 40);
    assert!(
        screen.contains("latency (ms) of POST /checkout"),
        "{screen}"
    );
    assert!(screen.contains("run p99"), "the run's p99 for reference");
    insta::assert_snapshot!("latency_checkout_120x40", screen);
    // The Overview shares the Latency panel's choice.
    app.panel = Panel::Overview;
    let screen = draw(&app, 160, 48);
    assert!(
        screen.contains("latency (ms) of POST /checkout"),
        "{screen}"
    );
}

#[test]
fn the_recent_window_keeps_two_minutes_on_the_axis() {
    let mut app = on(mid_run(), Panel::Load);
    app.window = crate::app::TimeWindow::Recent;
    let screen = draw(&app, 120, 40);
    assert!(screen.contains("2m"), "{screen}");
    insta::assert_snapshot!("load_recent_120x40", screen);
    // The whole-run axis ends at the plan's 65 s.
    app.window = crate::app::TimeWindow::WholeRun;
    let screen = draw(&app, 120, 40);
    assert!(screen.contains("1m5s"), "{screen}");
}

#[test]
fn idle_cluster_80x24() {
    insta::assert_snapshot!(
        "overview_idle_80x24",
        draw(&on(idle_cluster(), Panel::Overview), 80, 24)
    );
    insta::assert_snapshot!(
        "agents_idle_80x24",
        draw(&on(idle_cluster(), Panel::Agents), 80, 24)
    );
    insta::assert_snapshot!(
        "load_idle_80x24",
        draw(&on(idle_cluster(), Panel::Load), 80, 24)
    );
}

#[test]
fn overlays_80x24() {
    let cases = [
        ("help", with(mid_run(), Mode::Help)),
        (
            "start_scenario",
            with(
                idle_cluster(),
                dialog(StartStep::Scenario, AgentChoice::All),
            ),
        ),
        (
            "start_agents_all",
            with(idle_cluster(), dialog(StartStep::Agents, AgentChoice::All)),
        ),
        (
            "start_agents_count",
            with(
                idle_cluster(),
                dialog(StartStep::Agents, AgentChoice::Count),
            ),
        ),
        (
            "start_agents_label",
            with(
                idle_cluster(),
                dialog(StartStep::Agents, AgentChoice::Label),
            ),
        ),
        (
            "start_confirm",
            with(
                idle_cluster(),
                dialog(StartStep::Confirm, AgentChoice::Count),
            ),
        ),
        ("confirm_stop", with(mid_run(), Mode::ConfirmStop(run_id()))),
        (
            "confirm_delete",
            on(
                with(
                    idle_cluster(),
                    Mode::ConfirmDelete(idle_cluster().history[0].dir.clone()),
                ),
                Panel::Runs,
            ),
        ),
        ("agent_detail", with(mid_run(), Mode::Agent(node(2)))),
        ("agent_gone", with(mid_run(), Mode::Agent(node(4)))),
        ("summary", {
            let app = finished_run();
            let s = app
                .run
                .as_ref()
                .and_then(|r| r.summary.clone())
                .expect("finished run has a summary");
            on(with(app, Mode::Summary(Box::new(s))), Panel::Runs)
        }),
    ];
    for (name, app) in cases {
        insta::assert_snapshot!(format!("overlay_{name}_80x24"), draw(&app, 80, 24));
    }
}

#[test]
fn finished_run_load_80x24() {
    insta::assert_snapshot!(
        "load_finished_80x24",
        draw(&on(finished_run(), Panel::Load), 80, 24)
    );
}

#[test]
fn too_small_shows_status_and_hint() {
    let text = draw(&mid_run(), 39, 12);
    assert!(text.contains("terminal too small"), "{text}");
    let text = draw(&mid_run(), 80, 9);
    assert!(text.contains("terminal too small"), "{text}");
    assert!(text.lines().next().is_some_and(|l| l.contains("alive")));
}

#[test]
fn selected_rows_and_tabs_are_highlighted() {
    let mut app = on(mid_run(), Panel::Agents);
    app.selected[Panel::Agents.index()] = 1;
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal.draw(|f| render(&app, f)).expect("draws");
    let buf = terminal.backend().buffer();
    let text = draw(&app, 80, 24);
    let row = text
        .lines()
        .position(|l| l.contains("> agent-b"))
        .expect("agent-b selected") as u16;
    assert!(buf[(5, row)].modifier.contains(Modifier::REVERSED));
    // The active tab ("2 Agents") is reversed, the next one is not.
    let tab = text.lines().nth(1).expect("tab bar");
    let agents = tab.find("2 Agents").expect("tab") as u16;
    let load = tab.find("3 Load").expect("tab") as u16;
    assert!(buf[(agents, 1)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(load, 1)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn no_size_panics() {
    let fixtures = [App::new(), idle_cluster(), mid_run(), finished_run()];
    let summary = fixtures::summary(&mid_run());
    let modes = [
        Mode::Normal,
        Mode::Help,
        dialog(StartStep::Scenario, AgentChoice::All),
        dialog(StartStep::Agents, AgentChoice::Label),
        dialog(StartStep::Confirm, AgentChoice::Count),
        Mode::ConfirmStop(run_id()),
        Mode::ConfirmDelete("/tmp/results/x".into()),
        Mode::Agent(node(0)),
        Mode::Agent(node(4)),
        Mode::Summary(Box::new(summary)),
    ];
    let mut sizes: Vec<(u16, u16)> = (1..=12)
        .flat_map(|w| (1..=3).map(move |h| (w, h)))
        .collect();
    sizes.extend([
        (20, 5),
        (39, 9),
        (40, 10),
        (41, 11),
        (45, 12),
        (60, 15),
        (80, 3),
        (3, 80),
        (200, 60),
        (300, 8),
    ]);
    for base in &fixtures {
        for panel in Panel::ALL {
            for mode in &modes {
                let mut app = base.clone();
                app.panel = panel;
                app.mode = mode.clone();
                app.notice = Some("a notice that is rather long for a narrow terminal".into());
                app.dropped = 7;
                app.selected = [99; 6];
                for &(w, h) in &sizes {
                    draw(&app, w, h);
                }
            }
        }
    }
}

#[test]
fn a_hundred_agents_scroll_to_the_selected_one() {
    use crate::msg::Msg;
    use bfgg_protocol::NodeId;
    use bfgg_protocol::mesh::NodeState;
    let mut app = idle_cluster();
    for i in 0..100 {
        let mut h = fixtures::health(0, NodeState::Idle);
        h.node = NodeId(format!("12D3KooWhundredAgents{i:03}"));
        h.name = format!("bulk-{i:03}");
        h.sent_at_ms = app.now_ms;
        app.update(Msg::Health {
            health: h,
            at_ms: app.now_ms,
        });
    }
    assert!(app.agents.len() >= 100);
    app.panel = Panel::Agents;
    // Select the last row with j (bounded at the end).
    for _ in 0..200 {
        app.update(Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char('j'),
        )));
    }
    let last = app.agent_rows().last().map(|r| r.health.name.clone());
    let screen = draw(&app, 80, 24);
    let last = last.expect("rows");
    assert!(
        screen.contains(&last),
        "the selected last row is scrolled into view:\n{screen}"
    );
    assert!(
        !screen.contains("bulk-000"),
        "the first rows scrolled away:\n{screen}"
    );
    for (w, h) in [(120, 40), (12, 3), (40, 10)] {
        draw(&app, w, h);
    }
}

#[test]
fn every_flag_fits_the_overviews_agents_box() {
    use crate::msg::Msg;
    use bfgg_protocol::mesh::{NodeState, RunEvent};
    // agent-a coordinates, is behind its schedule and is lost: the longest
    // flags there are, in the narrowest agents box (120 columns).
    let mut app = mid_run();
    let mut h = fixtures::health(0, NodeState::Running(run_id()));
    h.keeping_schedule = false;
    h.sent_at_ms = app.now_ms;
    app.update(Msg::Health {
        health: h,
        at_ms: app.now_ms,
    });
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::AgentLost {
            node: node(0),
            last_heard_ms: 0,
        },
    });
    let screen = draw(&on(app, Panel::Overview), 120, 40);
    assert!(screen.contains("coord,behind,lost"), "{screen}");
    assert!(screen.contains("Err"), "{screen}");
}

#[test]
fn a_name_without_a_series_is_not_drawn_as_the_runs() {
    let mut app = on(mid_run(), Panel::Latency);
    if let Some(run) = app.run.as_mut() {
        run.by_name.remove("POST /checkout");
    }
    app.selected[Panel::Latency.index()] = 2;
    let screen = draw(&app, 120, 40);
    assert!(
        screen.contains("latency (ms) of POST /checkout: not kept over time"),
        "{screen}"
    );
}
