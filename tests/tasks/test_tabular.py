import numpy as np
import pytest

from learnlab.errors import LearnlabError
from learnlab.tasks.tabular import BUNDLED, load_dataset, load_table, standardize, trial_split


def test_csv_loader_reads_a_user_file_with_missing_values_and_categories(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("age,colour,dose,outcome\n30,red,1.5,sick\n40,blue,?,well\n,red,2.5,sick\n50,green,3.5,well\n")
    data = load_table(path)
    assert data.x.shape == (4, 3) and data.feature_names == ("age", "colour", "dose")
    np.testing.assert_allclose(data.x[:, 0], [30, 40, 40, 50])  # the missing age is the median
    np.testing.assert_allclose(data.x[:, 1], [2, 0, 2, 1])  # blue, green, red
    np.testing.assert_allclose(data.x[:, 2], [1.5, 2.5, 2.5, 3.5])
    np.testing.assert_array_equal(data.y, [0, 1, 0, 1])  # sick, well
    by_name = load_table(path, target="colour")
    assert by_name.n_classes == 3 and by_name.feature_names == ("age", "dose", "outcome")


def test_arff_loader_reads_an_openml_format_file(tmp_path):
    path = tmp_path / "iris_small.arff"
    path.write_text("% a comment\n@RELATION iris\n@ATTRIBUTE 'sepal length' NUMERIC\n@ATTRIBUTE width REAL\n"
                    "@ATTRIBUTE class {setosa,virginica}\n@DATA\n5.1,3.5,setosa\n6.3,?,virginica\n4.9,3.0,'setosa'\n")
    data = load_dataset(str(path))
    assert data.feature_names == ("sepal length", "width")
    np.testing.assert_allclose(data.x, [[5.1, 3.5], [6.3, 3.25], [4.9, 3.0]])
    np.testing.assert_array_equal(data.y, [0, 1, 0])


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("", "empty"), ("a,b\n", "no data rows"), ("a,b\n1,2\n3\n", "row 2 has 1 fields"),
])
def test_bad_tables_fail_with_one_clear_message(tmp_path, content, message):
    path = tmp_path / "table.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LearnlabError, match=message):
        load_table(path)


def test_unknown_target_and_unknown_set_are_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(LearnlabError, match="no column 'label'"):
        load_table(path, target="label")
    with pytest.raises(LearnlabError, match="Unknown tabular data set 'mnist'"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_sets_are_labelled_from_zero(name):
    data = load_dataset(name)
    assert data.x.ndim == 2 and len(data.x) == len(data.y) > 100
    assert set(np.unique(data.y)) == set(range(data.n_classes))
    assert np.isfinite(data.x).all()


def test_trial_split_is_stratified_nested_in_the_pool_and_reproducible():
    data = load_dataset("wine")
    train, test = trial_split(data, fraction=0.05, test_fraction=0.3, seed=3)
    again, test_again = trial_split(data, fraction=0.05, test_fraction=0.3, seed=3)
    np.testing.assert_array_equal(train, again)
    assert not set(train) & set(test)
    assert set(data.y[train]) == {0, 1, 2}  # every class, even at 5%
    _, test_more = trial_split(data, fraction=0.5, test_fraction=0.3, seed=3)
    np.testing.assert_array_equal(test, test_more)  # one test split per trial, whatever the fraction
    full_train, _ = trial_split(data, fraction=1.0, test_fraction=0.3, seed=3)
    assert len(full_train) + len(test) == len(data.y)


def test_standardize_uses_training_statistics_only():
    x_train, x_test = np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[2.0, 7.0]])
    a, b = standardize(x_train, x_test)
    np.testing.assert_allclose(a, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(b, [[0, 2]])  # a constant column is centred, not divided by 0
