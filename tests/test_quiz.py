"""The teaching-quiz analysis (dcf_teach.study.quiz): the paper's Table 3 p-values, sample sizes by the noncentral t, and bad
quiz files refused with one line naming the file."""
import dataclasses, json

import numpy as np
import pytest
from click.testing import CliRunner

from dcf_teach.core import UserError
from dcf_teach.study.quiz import Comparison, Trial, read_trials, students_needed, t_power, write_report, write_trials
from dcf_teach.cli.quiz import quiz_cli


@pytest.mark.parametrize('ours, unpaired, p_student, p_welch', [
    ((90.8, 4.8), (78.6, 13.7), 0.0160, 0.022),     # Black Holes
    ((87.8, 10.4), (61.6, 22.8), 0.0039, 0.006),    # Butterfly
])
def test_table3_p_values(ours, unpaired, p_student, p_welch):
    c = Comparison.from_stats(*ours, 10, *unpaired, 10)
    assert round(c.student.p, 4) == p_student and c.student.df == 18
    assert round(c.welch.p, 3) == p_welch
    assert c.d_ci[0] < c.d < c.d_ci[1]


def test_students_needed():
    assert [students_needed(d) for d in (0.5, 0.8, 1.0)] == [64, 26, 17]
    for d in (0.3, 0.5, 1.2):   # the smallest n: enough power at n, not at n - 1
        n = students_needed(d)
        assert t_power(d, n) >= 0.8 > t_power(d, n - 1)
    assert students_needed(0.0) is None
    with pytest.raises(ValueError): students_needed(0.5, power=1.2)


def study(seed=0, n=5, items=12):
    "Trials of n participants per group answering `items` images."
    rng, out = np.random.default_rng(seed), []
    for g, skill in (('unpaired', 0.65), ('baseline', 0.65), ('ours', 0.9)):
        for i in range(n):
            for k in range(items):
                truth = 'AB'[k % 2]; ok = bool(rng.random() < skill)
                out.append(Trial(f'{g}{i}', g, f'{k}.png', truth, truth if ok else 'BA'[k % 2], ok, 700.0, 800.0 * (k + 1),
                                 k, '5', 'deck', 'flip'))
    return out


def test_round_trip_and_report(tmp_path):
    trials = study()
    for p in sorted({t.participant for t in trials}):
        write_trials([t for t in trials if t.participant == p], tmp_path / 'in' / f"{p}.{'csv' if p[-1] in '024' else 'json'}")
    back = read_trials(sorted((tmp_path / 'in').iterdir()))
    assert sorted(back, key=lambda t: (t.participant, t.trial_index)) == sorted(trials, key=lambda t: (t.participant, t.trial_index))
    rep = write_report(back, tmp_path / 'out')
    j = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert set(j['comparisons']) == {'baseline', 'ours'} and j['summary']['ours']['n'] == 5
    assert j['comparisons']['ours']['student']['p'] == pytest.approx(rep.comparisons['ours'].student.p)
    assert 'n per group for 80 % power at the observed d' in (tmp_path / 'out' / 'report.html').read_text()


@pytest.mark.parametrize('name, text, msg', [
    ('cols.csv', 'participant,group,stimulus\np,ours,x.png\n', "missing column 'truth'"),
    ('flag.csv', None, "correct is true but answer 'B' differs from truth 'A'"),
    ('group.json', None, "participant 'unpaired0' is in group 'ours' here"),
    ('deck.json', None, 'files from different decks'),
    ('text.json', '[1, 2]', 'trial 1: not an object'),
])
def test_bad_file_is_named(tmp_path, name, text, msg):
    good = tmp_path / 'unpaired0.csv'
    t0 = study()[0]
    write_trials([t for t in study() if t.participant == 'unpaired0'], good)
    bad = tmp_path / name
    if text is not None: bad.write_text(text)
    else:
        t = {'flag.csv': dataclasses.replace(t0, participant='z', truth='A', answer='B', correct=True),
             'group.json': dataclasses.replace(t0, group='ours'),
             'deck.json': dataclasses.replace(t0, participant='z', deck_hash='other')}[name]
        write_trials([t], bad)
    with pytest.raises(UserError) as e: read_trials([good, bad])
    assert str(bad) in str(e.value) and msg in str(e.value) and '\n' not in str(e.value)
    r = CliRunner().invoke(quiz_cli, ['analyse', str(tmp_path), '--out', str(tmp_path / 'rep')])
    assert r.exit_code == 2 and str(bad) in r.output and not (tmp_path / 'rep').exists()
