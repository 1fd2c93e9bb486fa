import unittest

import main


class HandleTest(unittest.TestCase):
    # The greeting is free to change (it is what the quickstart edits);
    # the shape of the answer and the echo are the contract.
    def test_echoes_data(self):
        for data in ({"name": "ferry"}, [1, 2], "text", None):
            answer = main.handle({"data": data}, {})
            self.assertEqual(set(answer), {"message", "echo"})
            self.assertIsInstance(answer["message"], str)
            self.assertTrue(answer["message"])
            self.assertEqual(answer["echo"], data)

    def test_no_data(self):
        self.assertEqual(main.handle({}, {})["echo"], None)


if __name__ == "__main__":
    unittest.main()
