"""Train a small Keras model across the TFJob's workers (TF_CONFIG comes from the operator)."""

import argparse

import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
x = tf.random.normal((4096, 32))
y = tf.reduce_sum(x, axis=1, keepdims=True)
model.fit(x, y, epochs=3, batch_size=128)
model.save(f"{args.out}/model.keras")
