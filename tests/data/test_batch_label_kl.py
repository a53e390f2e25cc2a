import numpy as np
import pytest

from learnlab.data.quality import batch_label_kl


def test_batches_of_one_class_score_log_classes_against_a_balanced_reference():
    labels = np.repeat(np.arange(4), 64)  # four classes, sorted: every batch of 64 is one class
    order = np.arange(len(labels))
    assert batch_label_kl(order, labels, 64) == pytest.approx(np.log(4))


def test_a_head_of_one_class_is_near_iid_against_itself_but_not_against_the_whole_set():
    # The head of an epoch that holds only class 0: against its own histogram every batch
    # matches it exactly; against the data set's (balanced over 4 classes) it is log 4 away.
    head = np.zeros(256, dtype=np.int64)
    order = np.arange(len(head))
    assert batch_label_kl(order, head, 64) == pytest.approx(0.0)
    assert batch_label_kl(order, head, 64, reference=np.full(4, 0.25)) == pytest.approx(np.log(4))
